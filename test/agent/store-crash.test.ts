/**
 * "Nothing lost under kill -9 at any point of a write": a child process (store-writer.child.ts) saves
 * ever-increasing counters; we SIGKILL it at random moments, many times. After every kill the store must
 * open with the passphrase, decrypt, and hold a counter at least as new as the last one the child reported
 * durable ("saved N" is printed only after save resolved). The next child continues from that counter, so
 * the same file survives every kill in turn.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileStateStore, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';

const CHILD = fileURLToPath(new URL('./store-writer.child.ts', import.meta.url));
const KILLS = 32;
const PASS = 'kill-9 passphrase';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  lastSaved: number;
  opened: number;
  sawTempAtKill: boolean;
}

/** Runs one child, kills it `delayMs` after its first durable save (or before, when delayMs < 0). */
function runAndKill(path: string, delayMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path], {
      env: { ...process.env, KEYTUNNEL_PASSPHRASE: PASS },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let lastSaved = -1;
    let opened = -1;
    let armed = false;
    let sawTempAtKill = false;
    const kill = (): void => {
      // Snapshot the directory, then kill at once (a diagnostic of how often the kill lands mid-write).
      void readdir(join(path, '..')).then(
        (names) => {
          sawTempAtKill = names.some((n) => n.includes('.tmp-'));
          child.kill('SIGKILL');
        },
        () => child.kill('SIGKILL'),
      );
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) {
        const saved = /^saved (\d+)$/.exec(line);
        if (saved) lastSaved = Number(saved[1]);
        const op = /^opened (\d+)$/.exec(line);
        if (op) opened = Number(op[1]);
        if (saved && !armed) {
          armed = true;
          setTimeout(kill, delayMs);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    if (delayMs < 0) {
      armed = true;
      setTimeout(kill, 200 + Math.floor(Math.random() * 300)); // somewhere in startup / open / first writes
    }
    child.once('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child ended without being killed: ${signal ?? _code}\n${err}`));
      else resolve({ lastSaved, opened, sawTempAtKill });
    });
  });
}

it(
  `survives ${KILLS} kill -9s at random points of a write with nothing durable lost`,
  async () => {
    const path = profileStorePath(dir, 'crash');
    let floor = 0;
    let killsAfterSaves = 0;
    let midWrite = 0;
    for (let i = 0; i < KILLS; i++) {
      const delay = i % 8 === 7 ? -1 : Math.random() * 40;
      const run = await runAndKill(path, delay);
      if (run.opened >= 0) expect(run.opened).toBeGreaterThanOrEqual(floor); // the child resumed from a state ≥ floor
      if (run.lastSaved >= 0) killsAfterSaves++;
      if (run.sawTempAtKill) midWrite++;
      floor = Math.max(floor, run.lastSaved);

      const store = await FileStateStore.open({ path, passphrase: PASS });
      try {
        const state = await store.load();
        if (floor > 0) {
          expect(state).not.toBeNull();
          const counter = Number(JSON.parse(Buffer.from(state as Uint8Array).toString('utf8')).counter);
          expect(counter).toBeGreaterThanOrEqual(floor);
          floor = counter;
        }
        // Opening cleaned whatever the killed writer left behind.
        expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
      } finally {
        await store.close();
      }
    }
    expect(killsAfterSaves).toBeGreaterThanOrEqual(KILLS - Math.ceil(KILLS / 8));
    expect(floor).toBeGreaterThan(KILLS); // the counter really advanced across the runs
    console.log(`store-crash: ${KILLS} kills, ${midWrite} with a temp file present at the kill, final counter ${floor}`);
  },
  180_000,
);
