/**
 * The agent's audit trail: one structured line per CTAP request a gateway makes (JSON Lines), in
 * `<state-dir>/audit.log`. It records who asked (gateway fingerprint and policy name), which authenticator,
 * which command, for which RP (or U2F application-parameter hash) and user name, what was decided, the CTAP
 * status and how long it took. It never records request or response bodies, so no PIN, pinUvAuthToken, key or
 * hmac-secret output can reach it.
 *
 * The VM writes into this file (RP IDs and user names are what its client sent), so:
 * - values are JSON strings (a newline or escape sequence in a user name stays inside its line) and each string
 *   field is bounded (MAX_FIELD_CHARS); `keytunnel audit` escapes them again for the terminal;
 * - for requests the policy refused, the RP ID and user name were never checked against anything: the line says
 *   so (`claimed: true`), and `keytunnel audit` marks them "(claimed)";
 * - the file is created 0600 (an existing one is chmod'ed), in a 0700 state dir;
 * - it rotates at a size bound: audit.log, audit.log.1 … audit.log.4 (AUDIT_FILES files of AUDIT_MAX_BYTES each),
 *   so a flood of requests costs at most ~50 MB of disk;
 * - appends are asynchronous (one write at a time, batched, off the event loop), and the queue waiting for the
 *   disk is bounded: beyond it records are counted and a `dropped` line is written when the disk catches up.
 *
 * Durability: `close()` (called on shutdown) writes everything queued before it resolves. A process killed with
 * SIGKILL loses what was still queued — records of requests that finished in the last moment (normally well under
 * a millisecond's worth, each record being queued when its request ends) — and at worst leaves a torn last line,
 * which `keytunnel audit` skips. There is no fsync: a power cut can lose what the OS had not written back yet.
 */
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const AUDIT_FILE = 'audit.log';
/** Size at which audit.log is rotated. */
export const AUDIT_MAX_BYTES = 10 * 1024 * 1024;
/** Files kept: audit.log plus AUDIT_FILES - 1 rotated ones (audit.log.1 is the newest of those). */
export const AUDIT_FILES = 5;
/** Bound on each string field of a line (an RP ID is at most 253, a CTAP user name 64 bytes). */
export const MAX_FIELD_CHARS = 512;
/** Bytes allowed to wait for the disk before records are dropped (and counted). */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/** `silent`: allowed, and the authenticator signed without a test of user presence (getAssertion up=false). */
export type Decision = 'allowed' | 'silent' | 'refused-by-policy' | 'denied-by-user' | 'timed-out' | 'cancelled' | 'failed';

export interface AuditRecord {
  readonly gateway: string;
  readonly gatewayName: string;
  readonly authenticator: string;
  readonly command: string;
  readonly rpId?: string;
  /** Hex SHA-256 of the RP ID / AppID, when the request carries only the hash (U2F, credential management). */
  readonly rpIdHash?: string;
  readonly user?: string;
  readonly decision: Decision;
  /** Why the policy refused, when it did. */
  readonly reason?: string;
  /** CTAP2 status byte or CTAP1 status word, hex ("0x00", "0x9000"); absent when no answer was had. */
  readonly status?: string;
  readonly durationMs: number;
  /**
   * The RP ID / user name are only what the VM claimed: nothing checked them. Set by the log itself for
   * requests refused by the policy; a caller may set it for others.
   */
  readonly claimed?: boolean;
}

export interface AuditSink {
  record(entry: AuditRecord): void;
}

export interface AuditLogOptions {
  /** Rotate when the file would grow past this (default AUDIT_MAX_BYTES). */
  readonly maxBytes?: number;
  /** Files kept including the current one (default AUDIT_FILES). */
  readonly files?: number;
  /** Queue bound before records are dropped (default MAX_QUEUED_BYTES). */
  readonly maxQueuedBytes?: number;
  /** Where write errors go (default: one line on stderr); the agent keeps serving either way. */
  readonly onError?: (err: Error) => void;
  /** Clock for the `time` field (tests). */
  readonly now?: () => Date;
}

/** The rotated files of an audit log, oldest first, then the log itself. */
export function auditFiles(path: string, files: number = AUDIT_FILES): string[] {
  const out: string[] = [];
  for (let i = files - 1; i >= 1; i--) out.push(`${path}.${i}`);
  out.push(path);
  return out;
}

function bounded(value: string): string {
  return value.length > MAX_FIELD_CHARS ? `${value.slice(0, MAX_FIELD_CHARS)}…` : value;
}

/** The JSON line for one record (same shape as the pino lines of earlier versions). */
export function auditLine(entry: AuditRecord, time: Date): string {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) fields[key] = typeof value === 'string' ? bounded(value) : value;
  const claimed =
    entry.claimed ??
    (entry.decision === 'refused-by-policy' && (entry.rpId !== undefined || entry.user !== undefined || entry.rpIdHash !== undefined)
      ? true
      : undefined);
  return `${JSON.stringify({ level: 'info', time: time.toISOString(), ...fields, claimed, msg: 'ctap' })}\n`;
}

/** The audit log file of a state dir: bounded, rotated, appended asynchronously. */
export class AuditLog implements AuditSink {
  private readonly maxBytes: number;
  private readonly files: number;
  private readonly maxQueuedBytes: number;
  private readonly onError: (err: Error) => void;
  private readonly now: () => Date;
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private handle: FileHandle | undefined;
  private size = 0;
  private writer: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private reportedError = false;

  constructor(
    readonly path: string,
    options: AuditLogOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? AUDIT_MAX_BYTES;
    this.files = options.files ?? AUDIT_FILES;
    this.maxQueuedBytes = options.maxQueuedBytes ?? MAX_QUEUED_BYTES;
    this.now = options.now ?? (() => new Date());
    this.onError =
      options.onError ??
      ((err) => {
        if (this.reportedError) return;
        this.reportedError = true;
        process.stderr.write(`keytunnel: cannot write the audit log ${path}: ${err.message}\n`);
      });
    if (!(this.maxBytes > 0) || !(this.files >= 1)) throw new RangeError('audit log: maxBytes > 0 and files >= 1');
    // Open (and chmod an existing file to 0600) at once rather than at the first request.
    this.kick();
  }

  static forStateDir(stateDir: string, options?: AuditLogOptions): AuditLog {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    return new AuditLog(join(stateDir, AUDIT_FILE), options);
  }

  record(entry: AuditRecord): void {
    if (this.closing !== undefined) {
      this.dropped++;
      return;
    }
    const line = auditLine(entry, this.now());
    const bytes = Buffer.byteLength(line);
    if (this.queuedBytes + bytes > this.maxQueuedBytes) {
      this.dropped++;
    } else {
      this.queue.push(line);
      this.queuedBytes += bytes;
    }
    this.kick();
  }

  /** Records waiting for the disk (diagnostics and tests). */
  get pending(): number {
    return this.queue.length;
  }

  /** Resolves when everything recorded so far is written (or could not be). */
  async flush(): Promise<void> {
    while (this.writer !== undefined) await this.writer;
  }

  /** Write what is queued, then close the file. Records after close() are dropped. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      // Anything still queued here failed to write; one more attempt.
      if (this.queue.length > 0 || this.dropped > 0) {
        this.kick();
        await this.flush();
      }
      const handle = this.handle;
      this.handle = undefined;
      await handle?.close();
    })();
    return this.closing;
  }

  /** Start the writer unless it runs; it drains the queue one write at a time. */
  private kick(): void {
    if (this.writer !== undefined) return;
    this.writer = this.drain().finally(() => {
      this.writer = undefined;
    });
  }

  private async drain(): Promise<void> {
    try {
      await this.ensureOpen();
      while (this.queue.length > 0 || this.dropped > 0) {
        if (this.dropped > 0 && this.queue.length === 0) {
          // Counted, not silently lost: the drop shows in the log itself.
          const dropped = this.dropped;
          this.dropped = 0;
          this.queue.push(`${JSON.stringify({ level: 'warn', time: this.now().toISOString(), dropped, msg: 'audit records dropped' })}\n`);
          this.queuedBytes += Buffer.byteLength(this.queue[0]!);
        }
        // One batch: as many queued lines as fit in the current file (at least one).
        const room = this.maxBytes - this.size;
        let take = 0;
        let bytes = 0;
        while (take < this.queue.length) {
          const next = Buffer.byteLength(this.queue[take]!);
          if (take > 0 && bytes + next > room) break;
          bytes += next;
          take++;
        }
        if (this.size > 0 && bytes > room) {
          await this.rotate();
          continue;
        }
        const batch = this.queue.slice(0, take).join('');
        await this.handle!.appendFile(batch); // loops until every byte is written (O_APPEND: at the end)
        this.queue.splice(0, take);
        this.queuedBytes -= bytes;
        this.size += bytes;
      }
    } catch (err) {
      // Keep the agent serving; what failed stays queued (bounded) for the next attempt.
      const handle = this.handle;
      this.handle = undefined;
      await handle?.close().catch(() => {});
      try {
        this.onError(err as Error);
      } catch {
        // a failing error reporter must not become an unhandled rejection
      }
    }
  }

  private async ensureOpen(): Promise<void> {
    if (this.handle !== undefined) return;
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const handle = await open(this.path, 'a', 0o600);
    try {
      // The mode of open() applies only to a new file: an older agent created it 0644.
      await handle.chmod(0o600);
      this.size = (await handle.stat()).size;
    } catch (err) {
      await handle.close();
      throw err;
    }
    this.handle = handle;
  }

  /** audit.log.3 → .4, …, audit.log → audit.log.1; a new audit.log. */
  private async rotate(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
    const chain = auditFiles(this.path, this.files); // oldest first
    for (let i = 1; i < chain.length; i++) {
      try {
        await rename(chain[i]!, chain[i - 1]!);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    if (this.files === 1) {
      // No rotated files kept: start over.
      await open(this.path, 'w', 0o600).then((h) => h.close());
    }
    await this.ensureOpen();
  }
}
