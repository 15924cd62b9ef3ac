/**
 * A real FIDO key as an `Authenticator`: whole CTAP messages go to the key over CTAPHID (the session from
 * ctaphid-session.ts, a `CtaphidChannel` from ctaphid-client.ts, does the framing, INIT and CANCEL), one
 * transaction at a time (transaction-queue.ts, the only place transactions on a key are ordered) so several
 * gateways can share one key — fairly: each gateway (RequestContext.origin.gatewayFingerprint) has its own
 * bounded sub-queue and the gateways are served round-robin.
 *
 *   - kind 'cbor' → CTAPHID_CBOR, kind 'msg' → CTAPHID_MSG (CTAP 2.1 PS 2021-06-15 §11.2.9.1.1/2); the key's answer is
 *     returned as is (CTAP errors are answers, not rejections);
 *   - the key's KEEPALIVE statuses (§11.2.9.1.7: PROCESSING, UPNEEDED) are passed to `ctx.onStatus`;
 *   - `ctx.signal` aborting makes the client send CTAPHID_CANCEL (§11.2.9.1.5) and the caller's promise
 *     reject at once; the key is only used again once it has finished with the cancelled message;
 *   - the descriptor comes from the enumeration record and the INIT capabilities (§11.2.9.1.3): `ctap1` is
 *     false when CAPABILITY_NMSG is set, `wink` follows CAPABILITY_WINK;
 *   - authenticatorGetInfo (§6.4) is fetched once at open, for the agent to announce to gateways as a cache;
 *   - a removed key (discovery says so, or the transport reports the device gone) fails its running and queued
 *     requests at once with HidDeviceRemovedError, and every later request too;
 *   - ERR_CHANNEL_BUSY (another program on this machine is using the key) is retried after a short delay.
 */
import type { Authenticator, AuthenticatorDescriptor, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import { STATUS_PROCESSING, STATUS_UPNEEDED } from '../../../protocol/authenticator.ts';
import { CTAP2_GET_INFO, CTAP2_OK } from '../../../protocol/ctap2.ts';
import { MAX_GET_INFO } from '../../../protocol/tunnel.ts';
import {
  CAPABILITY_CBOR,
  CAPABILITY_NMSG,
  CAPABILITY_WINK,
  CTAPHID_CBOR,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_MSG,
  CTAPHID_WINK,
  CtaphidError,
  MAX_MESSAGE_SIZE,
} from '../../../protocol/ctaphid.ts';
import { type CtaphidSession, nodeHidSessionOpener, type SessionOpener } from './ctaphid-session.ts';
import { type FidoDeviceInfo, fidoDeviceId, fidoDeviceLabel } from './device-info.ts';
import { HidBadRequestError, HidClosedError, HidDeviceRemovedError, isDeviceRemovedError } from './errors.ts';
import { TransactionQueue } from './transaction-queue.ts';

export interface HidAuthenticatorOptions {
  /** Device open + INIT (default: node-hid + a CTAPHID channel, see ctaphid-session.ts). */
  readonly openSession?: SessionOpener;
  /** Bound on requests waiting for this key (default 32; each gateway's first request is admitted regardless). */
  readonly queueLimit?: number;
  /** How long open (INIT + getInfo) may take before it is given up (default 10 s). */
  readonly openTimeoutMs?: number;
  /** Waits between retries after CTAPHID ERR_CHANNEL_BUSY (injectable for tests; must reject on abort). */
  readonly delay?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * ERR_CHANNEL_BUSY means another program on this machine (a local browser, say) is using the key; the spec says
 * the client SHOULD retry after a short delay (CTAP 2.1 §11.2.9.1.6, CTAPHID_ERROR). Bounded: 50 × 100 ms.
 */
export const BUSY_RETRY_DELAY_MS = 100;
export const BUSY_RETRY_LIMIT = 50;

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}


export class HidAuthenticator implements Authenticator {
  readonly descriptor: AuthenticatorDescriptor;
  readonly info: FidoDeviceInfo;
  /** INIT capability flags of the key. */
  readonly capabilities: number;
  /**
   * The key's authenticatorGetInfo answer at open (status byte 0x00 + CBOR map, as `request` would return it),
   * or empty for a key without CTAP2 (no CAPABILITY_CBOR) or whose getInfo failed.
   */
  readonly getInfo: Uint8Array;

  private readonly session: CtaphidSession;
  private readonly queue: TransactionQueue;
  private readonly delay: (ms: number, signal: AbortSignal) => Promise<void>;
  private removed = false;
  private closing: Promise<void> | null = null;

  private constructor(info: FidoDeviceInfo, session: CtaphidSession, getInfo: Uint8Array, options: HidAuthenticatorOptions) {
    this.info = info;
    this.delay = options.delay ?? abortableDelay;
    this.session = session;
    this.capabilities = session.capabilities;
    this.getInfo = getInfo;
    this.queue = new TransactionQueue({ limit: options.queueLimit });
    this.descriptor = {
      id: fidoDeviceId(info),
      label: fidoDeviceLabel(info),
      transport: 'hid',
      ctap1: (session.capabilities & CAPABILITY_NMSG) === 0,
      wink: (session.capabilities & CAPABILITY_WINK) !== 0,
    };
  }

  /** Open the key: CTAPHID INIT, then authenticatorGetInfo when the key speaks CTAP2. */
  static async open(info: FidoDeviceInfo, options: HidAuthenticatorOptions = {}): Promise<HidAuthenticator> {
    const openTimeoutMs = options.openTimeoutMs ?? 10_000;
    const signal = AbortSignal.timeout(openTimeoutMs);
    const openSession = options.openSession ?? nodeHidSessionOpener();
    const session = await openSession(info, signal);
    try {
      let getInfo: Uint8Array = new Uint8Array(0);
      if ((session.capabilities & CAPABILITY_CBOR) !== 0) {
        const answer = await session.transact(CTAPHID_CBOR, Uint8Array.of(CTAP2_GET_INFO), { signal, timeoutMs: openTimeoutMs });
        if (answer.length >= 2 && answer[0] === CTAP2_OK && answer.length <= MAX_GET_INFO) getInfo = answer;
      }
      return new HidAuthenticator(info, session, getInfo, options);
    } catch (err) {
      await session.close();
      throw err;
    }
  }

  /** True once the key was removed or closed: discovery replaces it. */
  get gone(): boolean {
    return this.removed || this.closing !== null;
  }

  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    let cmd: number;
    if (kind === 'cbor') cmd = CTAPHID_CBOR;
    else if (kind === 'msg') cmd = CTAPHID_MSG;
    else return Promise.reject(new HidBadRequestError(`unknown request kind ${String(kind)}`));
    if (!(payload instanceof Uint8Array) || payload.length > MAX_MESSAGE_SIZE) {
      return Promise.reject(new HidBadRequestError(`request payload must be at most ${MAX_MESSAGE_SIZE} bytes`));
    }
    const onKeepalive = (status: number): void => {
      // Only the two statuses the spec defines are passed on; anything else from a key is noise.
      if (status === STATUS_PROCESSING || status === STATUS_UPNEEDED) ctx.onStatus(status);
    };
    // Fair sharing between gateways: one sub-queue per gateway certificate (transaction-queue.ts); the agent's own requests ('').
    return this.transact(cmd, payload, ctx.signal, onKeepalive, ctx.origin?.gatewayFingerprint ?? '');
  }

  /**
   * CTAPHID_WINK (§11.2.9.2.1), when the key advertises CAPABILITY_WINK. A wink is a courtesy with no required
   * effect, so while the key is busy (or others wait) it is skipped rather than queued behind a touch.
   */
  async wink(): Promise<void> {
    if (!this.descriptor.wink) throw new HidBadRequestError('this key does not support CTAPHID_WINK');
    if (this.queue.busy || this.queue.pending > 0) return;
    await this.transact(CTAPHID_WINK, new Uint8Array(0), undefined, undefined);
  }

  /** The key went away: fail the running and queued requests now, release the device. Idempotent. */
  markRemoved(): void {
    if (this.removed) return;
    this.removed = true;
    this.queue.fail(new HidDeviceRemovedError(this.info.path));
    void this.release();
  }

  /** Shut down: fail outstanding requests with HidClosedError and release the device. Idempotent. */
  close(): Promise<void> {
    if (!this.removed) this.queue.fail(new HidClosedError(`FIDO key ${this.info.path}`));
    return this.release();
  }

  private release(): Promise<void> {
    if (!this.closing) this.closing = this.session.close().catch(() => undefined);
    return this.closing;
  }

  private transact(
    cmd: number,
    payload: Uint8Array,
    signal: AbortSignal | undefined,
    onKeepalive: ((status: number) => void) | undefined,
    origin = '',
  ): Promise<Uint8Array> {
    return this.queue.run(async (taskSignal) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.session.transact(cmd, payload, { signal: taskSignal, onKeepalive });
        } catch (err) {
          // The transport saw the device vanish before discovery did: same fast failure for everyone.
          if (isDeviceRemovedError(err)) this.markRemoved();
          const busy = err instanceof CtaphidError && err.code === CTAPHID_ERR_CHANNEL_BUSY;
          if (!busy || attempt + 1 >= BUSY_RETRY_LIMIT || taskSignal.aborted) throw err;
          await this.delay(BUSY_RETRY_DELAY_MS, taskSignal);
        }
      }
    }, signal, origin);
  }
}
