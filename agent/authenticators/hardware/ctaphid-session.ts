/**
 * The session HidAuthenticator drives: one open CTAPHID channel on one key, and the openers that make one — a
 * report port (node-hid for real keys, a loopback face for tests) with a `CtaphidChannel` (ctaphid-client.ts)
 * allocated on it by CTAPHID_INIT. The channel is the session itself: HidAuthenticator's TransactionQueue is the
 * one place that orders transactions on a key.
 *
 * Transaction timeout: the channel gives up on a transaction after a fixed overall time, even while the key
 * sends KEEPALIVE. A real key waiting for a touch keeps going until its own user-presence timeout (~30 s on
 * common keys, answered as CTAP2_ERR_USER_ACTION_TIMEOUT), and cancellation comes from the caller's signal, so
 * sessions use a generous per-transaction timeout (default 120 s) as a last resort against a hung key only.
 */
import { CtaphidChannel, type CtaphidClientOptions, type ReportPort } from './ctaphid-client.ts';
import type { FidoDeviceInfo } from './device-info.ts';
import { LoopbackTransport } from './loopback-transport.ts';
import { type NodeHidApi, NodeHidTransport } from './node-hid-transport.ts';

/** What HidAuthenticator needs of a key once INIT is done (`CtaphidChannel` provides it). */
export interface CtaphidSession {
  /** INIT response capability flags (CTAP 2.1 PS 2021-06-15 §11.2.9.1.3). */
  readonly capabilities: number;
  /**
   * One CTAPHID transaction: request `cmd` + payload, answer payload. CANCEL on abort. `timeoutMs` overrides
   * the session's last-resort transaction timeout (a CBOR request whose CANCEL the key ignores ends there).
   * The caller runs one transaction at a time.
   */
  transact(
    cmd: number,
    payload: Uint8Array,
    options: { signal?: AbortSignal; onKeepalive?: (status: number) => void; timeoutMs?: number },
  ): Promise<Uint8Array>;
  /** Release the underlying device. Never rejects. */
  close(): Promise<void>;
}

/** Opens a CTAPHID session (device open + INIT) for one enumerated key. */
export type SessionOpener = (info: FidoDeviceInfo, signal: AbortSignal) => Promise<CtaphidSession>;

export const DEFAULT_TRANSACTION_TIMEOUT_MS = 120_000;

export interface SessionOptions {
  /** Per-transaction last-resort timeout (default 120 s). */
  readonly transactionTimeoutMs?: number;
  /** Passed to the CTAPHID channel (INIT timeout, clock, nonce source; its `timeoutMs` is `transactionTimeoutMs`). */
  readonly client?: CtaphidClientOptions;
}

/** A CTAPHID session over an already-open port: runs CTAPHID_INIT, closes the port if that fails. */
export async function openSessionOnPort(port: ReportPort, options: SessionOptions = {}, signal?: AbortSignal): Promise<CtaphidSession> {
  try {
    signal?.throwIfAborted();
    const channel = await CtaphidChannel.open(port, {
      ...options.client,
      timeoutMs: options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS,
    });
    signal?.throwIfAborted();
    return channel;
  } catch (err) {
    await Promise.resolve(port.close()).catch(() => undefined);
    throw err;
  }
}

/** Sessions on real keys through node-hid (the default for HidAuthenticator). */
export function nodeHidSessionOpener(options: SessionOptions & { hid?: NodeHidApi; platform?: NodeJS.Platform } = {}): SessionOpener {
  return async (info: FidoDeviceInfo, signal: AbortSignal) => {
    const port = await NodeHidTransport.open(info.path, { hid: options.hid, platform: options.platform });
    return openSessionOnPort(port, options, signal);
  };
}

/** Sessions through a loopback face on 127.0.0.1 (tests). */
export function loopbackSessionOpener(address: { host: string; port: number }, options: SessionOptions = {}): SessionOpener {
  return async (_info: FidoDeviceInfo, signal: AbortSignal) => {
    const port = await LoopbackTransport.connect(address.host, address.port);
    return openSessionOnPort(port, options, signal);
  };
}
