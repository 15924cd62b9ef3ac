/**
 * The one interface every source of CTAP answers implements: the soft authenticator, a real key behind
 * node-hid, an authenticator on the far side of the tunnel, and the per-gateway policy wrapper.
 *
 * A request is one whole CTAP message as CTAPHID carries it (CTAP 2.1 PS 2021-06-15 §11.2.9):
 *   - kind 'cbor' (CTAPHID_CBOR): payload = CTAP2 command byte + CBOR parameters;
 *     the answer = CTAP2 status byte + optional CBOR response.
 *   - kind 'msg'  (CTAPHID_MSG):  payload = a CTAP1/U2F APDU; the answer = response data + SW1 SW2.
 * Transport concerns (channels, fragmentation, keepalive timing, CANCEL framing) stay in the device engine.
 */

/** CTAPHID_KEEPALIVE status codes (CTAP 2.1 PS 2021-06-15 §11.2.9.1.7). */
export const STATUS_PROCESSING = 1;
export const STATUS_UPNEEDED = 2;
export type KeepaliveStatus = typeof STATUS_PROCESSING | typeof STATUS_UPNEEDED;

export type RequestKind = 'cbor' | 'msg';

/** Who is asking: filled in by whoever knows (the agent's session knows the gateway; a local face knows nothing). */
export interface RequestOrigin {
  /** SHA-256 fingerprint of the gateway's certificate, when the request came through the tunnel. */
  readonly gatewayFingerprint?: string;
  /** The gateway's display name from the agent's policy (or what it announced). */
  readonly gatewayName?: string;
  /**
   * Credential scope (set by the agent's policy layer for a gateway with `scope: per-gateway`): credentials an
   * authenticator creates are tagged with it, and only credentials carrying the same tag are visible
   * (getAssertion, numberOfCredentials, credential management). Absent = the shared, global view.
   */
  readonly credentialScope?: string;
}

export interface RequestContext {
  /** Aborted when the host sends CTAPHID_CANCEL, the channel is reset, or the transport goes away. */
  readonly signal: AbortSignal;
  /** Report progress; the device engine repeats the latest status in a KEEPALIVE every 100 ms. */
  onStatus(status: KeepaliveStatus): void;
  readonly origin?: RequestOrigin;
}

export interface AuthenticatorDescriptor {
  /** Stable identifier (survives restarts and re-plugging where the source allows it). */
  readonly id: string;
  /** Human label, e.g. "keytunnel soft authenticator" or "YubiKey 5 NFC (serial 123)"; used as the HID device name. */
  readonly label: string;
  /** Where the answers really come from. */
  readonly transport: 'soft' | 'hid' | 'remote';
  /** Whether CTAPHID_MSG (CTAP1/U2F) is supported; when false the device advertises CAPABILITY_NMSG. */
  readonly ctap1: boolean;
  /** Whether the authenticator can wink (CTAPHID_WINK). */
  readonly wink: boolean;
}

export interface Authenticator {
  readonly descriptor: AuthenticatorDescriptor;
  /**
   * Answer one CTAP request. Rejects only for transport-level failures (the answer cannot be had at all);
   * CTAP errors are answers (a status byte / status word) and resolve normally. When `ctx.signal` aborts the
   * promise settles promptly; the device engine then answers CTAP2_ERR_KEEPALIVE_CANCEL itself.
   */
  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array>;
  /** Optional CTAPHID_WINK. */
  wink?(): Promise<void>;
}
