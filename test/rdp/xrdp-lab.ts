/**
 * A real RDP connection on this machine for the RDP transport's end-to-end test, as docs/platform-notes.md measured
 * it: xrdp + xrdp-sesman (the VM's RDP server, started by hand: no systemd here) and xfreerdp (the laptop's client)
 * on an Xvfb display. A test user with a fresh random password; its session runs `~/startwm.sh`, which this lab
 * writes to exec the program under test (the keytunnel gateway) inside the session — with the session's $DISPLAY
 * and xrdp-chansrv, exactly where a gateway in a customer VM would run.
 *
 * Needs root (useradd, xrdp's sockets, FreeRDP's plugin directory). Every process is started here and stopped here
 * by its pid: xfreerdp (disconnects the RDP client), the session (its program's pid, written by startwm.sh: when it
 * exits sesman ends the session), then xrdp, sesman and Xvfb.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';

export const LAB_USER = 'kt-rdp-test';

/** Quote one word for /bin/sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function must(argv: readonly string[], input?: string): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stop a child we started: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function isListening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface SessionProgram {
  /** argv of the program the session runs (exec'd by startwm.sh, its output to `logFile`). */
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export class XrdpLab {
  readonly password = randomBytes(18).toString('base64url');
  readonly home: string;
  readonly workDir: string;
  private readonly children: ChildProcess[] = [];
  private client: ChildProcess | undefined;
  private clientLog = '';
  private xvfbDisplay = '';
  private xrdpPort = 0;

  private constructor(readonly uid: number) {
    this.home = `/home/${LAB_USER}`;
    this.workDir = join(this.home, 'keytunnel-rdp-test');
  }

  /** Create (or reuse) the test user with a fresh password and an empty work directory in its home. */
  static async create(): Promise<XrdpLab> {
    if (process.getuid?.() !== 0) throw new Error('the RDP lab needs root (useradd, xrdp, FreeRDP plugin directory)');
    if (spawnSync('id', ['-u', LAB_USER]).status !== 0) must(['useradd', '-m', '-s', '/bin/sh', LAB_USER]);
    const uid = Number(must(['id', '-u', LAB_USER]).trim());
    const lab = new XrdpLab(uid);
    must(['chpasswd'], `${LAB_USER}:${lab.password}\n`);
    await rm(lab.workDir, { recursive: true, force: true });
    await mkdir(lab.workDir, { recursive: true });
    return lab;
  }

  get logFile(): string {
    return join(this.workDir, 'session.log');
  }

  /** Give the test user a file or directory this test prepared as root. */
  giveToUser(path: string): void {
    must(['chown', '-R', `${LAB_USER}:${LAB_USER}`, path]);
  }

  /** Write ~/startwm.sh: record the session program's pid, then exec it with its output in logFile. */
  async setSessionProgram(program: SessionProgram): Promise<void> {
    const env = Object.entries(program.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`);
    const script = [
      '#!/bin/sh',
      '# Written by keytunnel test/rdp/xrdp-lab.ts: the xrdp session runs the program under test.',
      `echo $$ > ${shellQuote(join(this.workDir, 'session.pid'))}`,
      `exec env ${env.join(' ')} ${program.argv.map(shellQuote).join(' ')} > ${shellQuote(this.logFile)} 2>&1`,
      '',
    ].join('\n');
    const path = join(this.home, 'startwm.sh');
    await writeFile(path, script);
    await chmod(path, 0o755);
    this.giveToUser(path);
    this.giveToUser(this.workDir);
  }

  /** Start Xvfb (xfreerdp's display), xrdp-sesman and xrdp on a free port. */
  async start(): Promise<void> {
    must(['sh', '/usr/share/xrdp/socksetup']);
    const xvfb = spawn('Xvfb', ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1024x768x24'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    this.children.push(xvfb);
    this.xvfbDisplay = await new Promise<string>((resolve, reject) => {
      let text = '';
      (xvfb.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(`:${text.trim()}`);
      });
      xvfb.once('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
    });
    // sesman's ListenAddress=127.0.0.1 ends up on ::1 with xrdp's IPv6 build: probe both.
    const sesmanUp = async (): Promise<boolean> => (await isListening(3350)) || (await isListening(3350, '::1'));
    if (await sesmanUp()) {
      throw new Error('xrdp-sesman is already running on this machine (port 3350): stop it before the RDP test');
    }
    const sesman = spawn('xrdp-sesman', ['--nodaemon'], { stdio: 'ignore' });
    this.children.push(sesman);
    this.xrdpPort = await freePort();
    const xrdp = spawn('xrdp', ['--nodaemon', '--port', String(this.xrdpPort)], { stdio: 'ignore' });
    this.children.push(xrdp);
    await waitUntil('xrdp-sesman on port 3350', sesmanUp, 10_000);
    await waitUntil(`xrdp on port ${this.xrdpPort}`, () => isListening(this.xrdpPort), 10_000);
  }

  /** The xrdp port (a delay proxy may stand in front of it). */
  get port(): number {
    return this.xrdpPort;
  }

  /** Run xfreerdp against xrdp (or `port`), with extra arguments (e.g. `/dvc:keytunnel,PORT`). */
  connectClient(extra: readonly string[], port = this.xrdpPort): void {
    if (this.client) throw new Error('an RDP client is already running');
    this.clientLog = '';
    // stdbuf: FreeRDP's log lines go to a pipe here, line-buffered so they are seen as they happen (stdbuf execs
    // xfreerdp, so the pid is xfreerdp's).
    const client = spawn(
      'stdbuf',
      ['-oL', '-eL', 'xfreerdp', `/v:127.0.0.1:${port}`, `/u:${LAB_USER}`, `/p:${this.password}`, '/cert:ignore', '/size:800x600', '/bpp:24', ...extra],
      // WLOG_FILTER: the keytunnel plugin's INFO lines too (FreeRDP's default level is WARN).
      { env: { ...process.env, DISPLAY: this.xvfbDisplay, WLOG_FILTER: 'com.keytunnel.rdp:INFO' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer): void => {
      if (this.clientLog.length < 200_000) this.clientLog += d.toString();
    };
    client.stdout!.on('data', keep);
    client.stderr!.on('data', keep);
    this.client = client;
  }

  /** xfreerdp's output so far (FreeRDP's and the keytunnel plugin's log lines). */
  get clientOutput(): string {
    return this.clientLog;
  }

  /** Disconnect the RDP client (SIGTERM to xfreerdp); the session stays (sesman KillDisconnected=false). */
  async disconnectClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await stopChild(client);
  }

  async sessionLog(): Promise<string> {
    try {
      return await readFile(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** End the session (its program exits, so sesman ends it), the client, xrdp, sesman and Xvfb. */
  async stop(): Promise<void> {
    await this.disconnectClient();
    try {
      const pid = Number((await readFile(join(this.workDir, 'session.pid'), 'utf8')).trim());
      if (Number.isInteger(pid) && pid > 1) {
        process.kill(pid, 'SIGTERM');
        await waitUntil('the session program to exit', () => !existsSync(`/proc/${pid}`), 10_000).catch(() => process.kill(pid, 'SIGKILL'));
        // sesman notices the window manager has gone and ends the session (Xorg, chansrv).
        await waitUntil('the xrdp session to end', () => spawnSync('pgrep', ['-u', LAB_USER]).status !== 0, 10_000).catch(() => {});
      }
    } catch {
      // no session was started
    }
    for (const child of this.children.splice(0).reverse()) await stopChild(child);
  }
}
