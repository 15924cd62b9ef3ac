/**
 * The agent's audit trail: one structured line per CTAP request a gateway makes (JSON Lines, pino), in
 * `<state-dir>/audit.log`. It records who asked (gateway fingerprint and policy name), which authenticator,
 * which command, for which RP (or U2F application-parameter hash) and user name, what was decided, the CTAP
 * status and how long it took. It never records request or response bodies, so no PIN, pinUvAuthToken, key or
 * hmac-secret output can reach it. Lines are written synchronously (a few µs each).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

export const AUDIT_FILE = 'audit.log';

export type Decision = 'allowed' | 'refused-by-policy' | 'denied-by-user' | 'timed-out' | 'cancelled' | 'failed';

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
}

export interface AuditSink {
  record(entry: AuditRecord): void;
}

/** The audit log file of a state dir, appended to by a pino logger. */
export class AuditLog implements AuditSink {
  private readonly logger: Logger;
  private readonly destination: ReturnType<typeof pino.destination>;

  constructor(readonly path: string) {
    // Synchronous: an audit line must not be lost when the agent is killed right after a request.
    this.destination = pino.destination({ dest: path, mkdir: true, sync: true });
    this.logger = pino(
      { base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg', formatters: { level: (label) => ({ level: label }) } },
      this.destination,
    );
  }

  static forStateDir(stateDir: string): AuditLog {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    return new AuditLog(join(stateDir, AUDIT_FILE));
  }

  record(entry: AuditRecord): void {
    this.logger.info(entry, 'ctap');
  }

  /** Flush what is buffered (call on shutdown). */
  close(): void {
    this.destination.flushSync();
  }
}
