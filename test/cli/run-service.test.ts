/**
 * Which signals stop a long-running command cleanly: SIGINT and SIGTERM everywhere; on Windows also SIGBREAK
 * (Ctrl+Break) and SIGHUP (console window closed), the signals Node on Windows actually delivers (issue 17).
 * The events are emitted on `process` as Node's signal handling would; the real delivery of SIGINT to a
 * Windows node.exe is exercised by test/windows/soft-wine.test.ts.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { stopSignals, waitForStopSignal } from '../../cli/run-service.ts';

const ALL: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP'];
const log = pino({ level: 'silent' });
let before = new Map<NodeJS.Signals, Function[]>();

function snapshot(): void {
  before = new Map(ALL.map((s) => [s, [...process.listeners(s)]]));
}
afterEach(() => {
  // Drop what waitForStopSignal left (its second-signal handlers call process.exit).
  for (const s of ALL) for (const l of process.listeners(s)) if (!before.get(s)?.includes(l)) process.off(s, l as () => void);
});

async function settlesWith(p: Promise<NodeJS.Signals>): Promise<NodeJS.Signals | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 50))]);
}

describe('stop signals', () => {
  it('POSIX: SIGINT and SIGTERM; win32 adds SIGBREAK and SIGHUP', () => {
    expect(stopSignals('linux')).toEqual(['SIGINT', 'SIGTERM']);
    expect(stopSignals('darwin')).toEqual(['SIGINT', 'SIGTERM']);
    expect(stopSignals('win32')).toEqual(['SIGINT', 'SIGBREAK', 'SIGHUP', 'SIGTERM']);
  });

  for (const signal of ['SIGBREAK', 'SIGHUP', 'SIGINT'] as const) {
    it(`win32: ${signal} stops the service`, async () => {
      snapshot();
      const stopped = waitForStopSignal(log, 'win32');
      process.emit(signal, signal);
      expect(await settlesWith(stopped)).toBe(signal);
    });
  }

  it('linux: SIGBREAK is not a stop signal, SIGTERM is; the first-signal handlers are removed', async () => {
    snapshot();
    const stopped = waitForStopSignal(log, 'linux');
    process.emit('SIGBREAK', 'SIGBREAK');
    expect(await settlesWith(stopped)).toBe('pending');
    process.emit('SIGTERM', 'SIGTERM');
    expect(await settlesWith(stopped)).toBe('SIGTERM');
    // What remains is one second-signal handler per stop signal, nothing on SIGBREAK.
    expect(process.listenerCount('SIGTERM') - before.get('SIGTERM')!.length).toBe(1);
    expect(process.listenerCount('SIGINT') - before.get('SIGINT')!.length).toBe(1);
    expect(process.listenerCount('SIGBREAK') - before.get('SIGBREAK')!.length).toBe(0);
  });
});
