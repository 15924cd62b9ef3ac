/**
 * The doctor's window on the machine, injected so every check can be tested on both outcomes here (this machine
 * has no uhid, no vhci-hcd and is not Windows): file probes, a command runner, TCP/TLS probes and the clock.
 * `systemPorts()` is the real thing.
 */
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, open, readdir } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface CommandResult {
  /** Exit status; null when killed (timeout). */
  readonly code: number | null;
  readonly stdout: string;
}

export type TcpProbe = { readonly ok: true } | { readonly ok: false; readonly error: string; readonly code?: string };

export type TlsProbe =
  | { readonly ok: true; readonly certDer: Uint8Array }
  | { readonly ok: false; readonly error: string };

/** Our own TLS credentials, offered in the probe handshake so the peer sees who asks. */
export interface ProbeIdentity {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface DoctorPorts {
  readonly platform: NodeJS.Platform;
  now(): Date;
  exists(path: string): Promise<boolean>;
  /** Could this process open `path` for reading and writing? */
  canReadWrite(path: string): Promise<boolean>;
  /** Entries of a directory; [] when it is missing or unreadable. */
  listDir(path: string): Promise<string[]>;
  /** The first `maxBytes` of a (small, e.g. sysfs) file, or undefined when it cannot be read. */
  readText(path: string, maxBytes: number): Promise<string | undefined>;
  /** Run a program (no shell); undefined when it cannot be started (not installed). */
  run(file: string, args: readonly string[], timeoutMs: number): Promise<CommandResult | undefined>;
  tcpConnect(endpoint: Endpoint, timeoutMs: number): Promise<TcpProbe>;
  /** A TLS 1.3 handshake that only collects the peer's certificate (no HELLO, closed right after). */
  tlsPeerCertificate(endpoint: Endpoint, identity: ProbeIdentity | undefined, timeoutMs: number): Promise<TlsProbe>;
}

/** The largest output kept from a probed command. */
const MAX_COMMAND_OUTPUT = 64 * 1024;

export function systemPorts(): DoctorPorts {
  return {
    platform: process.platform,
    now: () => new Date(),
    async exists(path) {
      try {
        await access(path, fsConstants.F_OK);
        return true;
      } catch {
        return false;
      }
    },
    async canReadWrite(path) {
      try {
        await access(path, fsConstants.R_OK | fsConstants.W_OK);
        return true;
      } catch {
        return false;
      }
    },
    async listDir(path) {
      try {
        return await readdir(path);
      } catch {
        return [];
      }
    },
    async readText(path, maxBytes) {
      let handle;
      try {
        handle = await open(path, 'r');
        const buf = Buffer.alloc(maxBytes);
        const { bytesRead } = await handle.read(buf, 0, maxBytes, 0);
        return buf.subarray(0, bytesRead).toString('utf8');
      } catch {
        return undefined;
      } finally {
        await handle?.close();
      }
    },
    run(file, args, timeoutMs) {
      return new Promise((resolve) => {
        execFile(file, [...args], { timeout: timeoutMs, maxBuffer: MAX_COMMAND_OUTPUT, windowsHide: true }, (err, stdout) => {
          if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(undefined);
          const code = err ? (typeof err.code === 'number' ? err.code : err.killed ? null : 1) : 0;
          resolve({ code, stdout: String(stdout) });
        });
      });
    },
    tcpConnect(endpoint, timeoutMs) {
      return new Promise((resolve) => {
        const socket = net.connect({ host: endpoint.host, port: endpoint.port });
        const done = (result: TcpProbe): void => {
          clearTimeout(timer);
          socket.destroy();
          resolve(result);
        };
        const timer = setTimeout(() => done({ ok: false, error: `no answer within ${timeoutMs} ms`, code: 'ETIMEDOUT' }), timeoutMs);
        socket.once('connect', () => done({ ok: true }));
        socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, error: err.message, code: err.code }));
      });
    },
    tlsPeerCertificate(endpoint, identity, timeoutMs) {
      return new Promise((resolve) => {
        const socket = tls.connect({
          host: endpoint.host,
          port: endpoint.port,
          // Peers pin fingerprints and never check names or CAs; neither does this probe.
          rejectUnauthorized: false,
          minVersion: 'TLSv1.3',
          ...(identity !== undefined ? { cert: identity.certPem, key: identity.keyPem } : {}),
        });
        const done = (result: TlsProbe): void => {
          clearTimeout(timer);
          socket.destroy();
          resolve(result);
        };
        const timer = setTimeout(() => done({ ok: false, error: `TLS handshake timed out after ${timeoutMs} ms` }), timeoutMs);
        socket.once('secureConnect', () => {
          const cert = socket.getPeerX509Certificate();
          done(cert === undefined ? { ok: false, error: 'the peer sent no certificate' } : { ok: true, certDer: new Uint8Array(cert.raw) });
        });
        socket.once('error', (err) => done({ ok: false, error: err.message }));
      });
    },
  };
}
