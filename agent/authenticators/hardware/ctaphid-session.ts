/**
 * Opening a CTAPHID session for HidAuthenticator: a report port (node-hid for real keys, the loopback face for
 * tests) + the host-side CTAPHID client (ctaphid-client.ts) after its CTAPHID_INIT, seen through the narrow
 * `CtaphidSession` interface HidAuthenticator needs.
 *
 * Transaction timeout: the client gives up on a transaction after a fixed overall time, even while the key
 * sends KEEPALIVE. A real key waiting for a touch keeps going until its own user-presence timeout (~30 s on
 * common keys, answered as CTAP2_ERR_USER_ACTION_TIMEOUT), and cancellation comes from the caller's signal, so
 * sessions use a generous per-transaction timeout (default 120 s) as a last resort against a hung key only.
 */
import { CtaphidClient, type CtaphidClientOptions, LoopbackTransport, type ReportPort } from './ctaphid-client.ts';
import type { FidoDeviceInfo } from './device-info.ts';
import type { CtaphidSession, SessionOpener } from './hid-authenticator.ts';
import { type NodeHidApi, NodeHidTransport } from './node-hid-transport.ts';

export const DEFAULT_TRANSACTION_TIMEOUT_MS = 120_000;

export interface SessionOptions {
  /** Per-transaction last-resort timeout (default 120 s). */
  readonly transactionTimeoutMs?: number;
  /** Passed to the CTAPHID client (INIT timeout, clock, nonce source). */
  readonly client?: CtaphidClientOptions;
}

/** A CTAPHID session over an already-open port: runs CTAPHID_INIT, closes the port if that fails. */
export async function openSessionOnPort(port: ReportPort, options: SessionOptions = {}, signal?: AbortSignal): Promise<CtaphidSession> {
  let client: CtaphidClient;
  try {
    signal?.throwIfAborted();
    client = await CtaphidClient.open(port, options.client);
    signal?.throwIfAborted();
  } catch (err) {
    await Promise.resolve(port.close()).catch(() => undefined);
    throw err;
  }
  const info = client.info;
  const timeoutMs = options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS;
  let closing: Promise<void> | null = null;
  return {
    capabilities: info ? info.capabilities : 0,
    transact: async (cmd, payload, opts) =>
      (await client.transact(cmd, payload, { signal: opts.signal, onKeepalive: opts.onKeepalive, timeoutMs: opts.timeoutMs ?? timeoutMs }))
        .payload,
    close: () => {
      if (!closing) closing = client.close().catch(() => undefined);
      return closing;
    },
  };
}

/** Sessions on real keys through node-hid (the default for HidAuthenticator). */
export function nodeHidSessionOpener(options: SessionOptions & { hid?: NodeHidApi; platform?: NodeJS.Platform } = {}): SessionOpener {
  return async (info: FidoDeviceInfo, signal: AbortSignal) => {
    const port = await NodeHidTransport.open(info.path, { hid: options.hid, platform: options.platform });
    return openSessionOnPort(port, options, signal);
  };
}

/** Sessions through a loopback face on 127.0.0.1 (tests, and keys emulated by `keytunnel soft --hid loopback`). */
export function loopbackSessionOpener(address: { host: string; port: number }, options: SessionOptions = {}): SessionOpener {
  return async (_info: FidoDeviceInfo, signal: AbortSignal) => {
    const port = await LoopbackTransport.connect(address.host, address.port);
    return openSessionOnPort(port, options, signal);
  };
}
