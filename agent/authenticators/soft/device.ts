/**
 * The soft authenticator's core: persistent state plus the volatile "since power-up" state every command
 * handler works on (PIN/UV auth protocols and token, consecutive wrong-PIN count, getNextAssertion and
 * credential-enumeration cursors, key cache), and the shared helpers: saving, signature counters, user
 * presence, credential lookup and scope visibility.
 *
 * "Power-up" for us is opening the authenticator (SoftAuthenticator.open / create): a restart of the agent
 * is the only power cycle a soft authenticator has (it clears PIN_AUTH_BLOCKED, CTAP 2.1 PS 2021-06-15 §8.2:
 * "requires power cycle to reset").
 *
 * Signature counters (WebAuthn §6.1.1), the documented choice:
 *   - resident credentials: a counter per credential, incremented and saved (awaited) before the response;
 *   - non-resident credentials and U2F key handles (nothing stored per credential): one global counter.
 *     Values are handed out from blocks of COUNTER_RESERVATION_BLOCK reserved ahead: the reserved high-water
 *     mark is saved (awaited) before any value of a new block is used, and after a restart counting resumes
 *     above it, so the counter never goes backwards across restarts and most requests need no save.
 */
import { STATUS_PROCESSING, STATUS_UPNEEDED, type RequestContext } from '../../../protocol/authenticator.ts';
import { unwrapCredentialId, type WrappedCredential } from './credential-id.ts';
import { hkdfSha256, hmacSha256, importCredentialKey, KeyCache, type CredentialAlg, type CredentialKey } from './crypto.ts';
import { CtapError } from './errors.ts';
import { PinProtocolOne, PinProtocolTwo, type PinUvAuthProtocol } from './pin-protocol.ts';
import { PinUvAuthToken } from './pin-token.ts';
import { askPresence } from '../../presence/ask.ts';
import { ctap2PresenceStatus } from '../../presence/outcome-status.ts';
import type { Presence, PresenceOutcome, PresenceRequest } from '../../presence/port.ts';
import type { Clock, Random, StateStore } from './ports.ts';
import { DEFAULT_MIN_PIN_LENGTH, MAX_PIN_RETRIES, serializeState, type ResidentCredential, type SoftState } from './state.ts';

export const COUNTER_RESERVATION_BLOCK = 1024;
const OPENED_ID_CACHE_SIZE = 1024;

/**
 * The keytunnel soft authenticator's AAGUID: 70829c58-064f-4078-b3c7-8dc3b4c185b1 (random, fixed; listed in
 * the README for allow-lists such as Entra ID's).
 */
export const KEYTUNNEL_AAGUID = Uint8Array.from(Buffer.from('70829c58064f4078b3c78dc3b4c185b1', 'hex'));

/** Resolved configuration. */
export interface SoftConfig {
  readonly aaguid: Uint8Array;
  readonly label: string;
  /** How long after power-up authenticatorReset is allowed (§6.6: 10 s). */
  readonly resetWindowMs: number;
  readonly maxResidentCredentials: number;
  /** RP IDs allowed to read minPINLength through the minPinLength extension (§12.4); empty by default. */
  readonly minPinLengthRpIds: readonly string[];
  readonly firmwareVersion: number;
  /** Default attestation statement format for makeCredential. */
  readonly attestation: 'packed' | 'none';
}

/**
 * Who began a continuation (a getNextAssertion sequence or a credential enumeration): the credential scope and
 * the gateway of the request that created it. CTAP assumes one platform per authenticator; behind the agent
 * several VMs share one, so a continuation may only be continued by the same scope and gateway — anyone else's
 * GetNext gets CTAP2_ERR_NOT_ALLOWED and ends it (as every other command does, §6.3 / §6.8).
 */
export interface CursorOwner {
  readonly scope: string | undefined;
  readonly gateway: string | undefined;
}

export function cursorOwner(ctx: RequestContext): CursorOwner {
  return { scope: ctx.origin?.credentialScope, gateway: ctx.origin?.gatewayFingerprint };
}

export function sameCursorOwner(a: CursorOwner, b: CursorOwner): boolean {
  return a.scope === b.scope && a.gateway === b.gateway;
}

/** A pending authenticatorGetNextAssertion sequence (§6.3). */
export interface AssertionCursor {
  readonly owner: CursorOwner;
  remaining(): number;
  /** Sign with the next credential of the sequence (same parameters as the getAssertion call). */
  respondNext(): Promise<Uint8Array>;
  lastAt: number;
}

/** A pending credential-management enumeration (§6.8.3 / §6.8.4). */
export interface EnumerationCursor {
  readonly owner: CursorOwner;
  readonly kind: 'rps' | 'credentials';
  /** Encoded responses still to be handed out by the GetNext subcommand. */
  readonly pending: Uint8Array[];
}

export class SoftDevice {
  state: SoftState;
  readonly store: StateStore;
  readonly presence: Presence;
  readonly clock: Clock;
  readonly random: Random;
  readonly config: SoftConfig;

  /** Derived from masterSecret; replaced on reset. */
  wrapKey!: Uint8Array;
  private credRandomKey!: Uint8Array;

  readonly pinProtocols: ReadonlyMap<number, PinUvAuthProtocol>;
  readonly token: PinUvAuthToken;
  /** Consecutive wrong PINs since power-up; at 3, PIN_AUTH_BLOCKED until the next power cycle (§6.5.5.6, §6.5.5.7). */
  consecutivePinFailures = 0;
  readonly poweredUpAt: number;

  /**
   * Pending continuations. Every request first takes both out ({@link takeCursors}); only the GetNext that
   * legitimately continues one puts it back, so any other request — refused, malformed, too large, from another
   * scope — ends them (§6.3: "any other command"; §6.8.3 / §6.8.4 likewise).
   */
  assertionCursor: AssertionCursor | undefined;
  enumerationCursor: EnumerationCursor | undefined;

  readonly keyCache = new KeyCache();
  /** Successfully opened credential ids, keyed by rpIdHash || id (so a hit implies the same RP binding). */
  private readonly openedIds = new Map<string, WrappedCredential>();
  private residentIndex = new Map<string, ResidentCredential>();
  private counterIssued: number;

  constructor(
    state: SoftState,
    deps: { store: StateStore; presence: Presence; clock: Clock; random: Random; config: SoftConfig },
  ) {
    this.state = state;
    this.store = deps.store;
    this.presence = deps.presence;
    this.clock = deps.clock;
    this.random = deps.random;
    this.config = deps.config;
    this.deriveKeys();
    this.pinProtocols = new Map<number, PinUvAuthProtocol>([
      [2, new PinProtocolTwo(this.random)],
      [1, new PinProtocolOne()],
    ]);
    this.token = new PinUvAuthToken((n) => this.random.bytes(n));
    this.poweredUpAt = this.clock.now();
    this.counterIssued = state.counterReserved;
    this.reindex();
  }

  private deriveKeys(): void {
    const salt = new Uint8Array(32);
    this.wrapKey = hkdfSha256(this.state.masterSecret, salt, 'keytunnel credential-id wrap', 32);
    this.credRandomKey = hkdfSha256(this.state.masterSecret, salt, 'keytunnel hmac-secret CredRandom', 32);
  }

  /** Remove and return both continuations (see {@link assertionCursor}). */
  takeCursors(): { assertion: AssertionCursor | undefined; enumeration: EnumerationCursor | undefined } {
    const taken = { assertion: this.assertionCursor, enumeration: this.enumerationCursor };
    this.assertionCursor = undefined;
    this.enumerationCursor = undefined;
    return taken;
  }

  reindex(): void {
    this.residentIndex = new Map(this.state.credentials.map((c) => [KeyCache.keyOf(c.id), c]));
  }

  async save(): Promise<void> {
    await this.store.save(serializeState(this.state));
  }

  /** Next value of the global counter (non-resident credentials, U2F); saves a new reservation when needed. */
  async nextGlobalCounter(): Promise<number> {
    const value = this.counterIssued + 1;
    if (value > this.state.counterReserved) {
      this.state.counterReserved = value + COUNTER_RESERVATION_BLOCK - 1;
      await this.save();
    }
    this.counterIssued = value;
    return value;
  }

  /**
   * unwrapCredentialId under the current wrap key, remembering successful openings (LRU of 1024) so repeated
   * assertions skip the AES-GCM work. Cleared whenever the wrap key changes (reset).
   */
  openCredentialId(rpIdHash: Uint8Array, id: Uint8Array): WrappedCredential | null {
    const k = KeyCache.keyOf(rpIdHash) + KeyCache.keyOf(id);
    const hit = this.openedIds.get(k);
    if (hit !== undefined) {
      this.openedIds.delete(k);
      this.openedIds.set(k, hit);
      return hit;
    }
    const opened = unwrapCredentialId(this.wrapKey, rpIdHash, id);
    if (opened !== null) {
      this.openedIds.set(k, opened);
      if (this.openedIds.size > OPENED_ID_CACHE_SIZE) {
        const oldest = this.openedIds.keys().next().value;
        if (oldest !== undefined) this.openedIds.delete(oldest);
      }
    }
    return opened;
  }

  findResident(id: Uint8Array): ResidentCredential | undefined {
    return this.residentIndex.get(KeyCache.keyOf(id));
  }

  addResident(cred: ResidentCredential): void {
    this.state.credentials.push(cred);
    this.residentIndex.set(KeyCache.keyOf(cred.id), cred);
  }

  removeResident(cred: ResidentCredential): void {
    this.state.credentials = this.state.credentials.filter((c) => c !== cred);
    this.residentIndex.delete(KeyCache.keyOf(cred.id));
    this.keyCache.clear();
  }

  /** An imported credential key, from the cache when possible. */
  credentialKey(id: Uint8Array, alg: CredentialAlg, secret: Uint8Array): CredentialKey {
    const k = KeyCache.keyOf(id);
    let key = this.keyCache.get(k);
    if (key === undefined || key.alg !== alg) {
      key = importCredentialKey(alg, secret);
      this.keyCache.set(k, key);
    }
    return key;
  }

  /**
   * hmac-secret CredRandom for a non-resident credential: derived from its private key under a device secret
   * (so it is stable for the credential yet unknown to anyone without the device secret); with/without UV differ.
   */
  derivedCredRandom(secret: Uint8Array, uv: boolean): Uint8Array {
    return hmacSha256(this.credRandomKey, Uint8Array.of(uv ? 1 : 0), secret);
  }

  /** A resident credential is visible in the request's scope: exactly the same tag, or no scope = every credential. */
  visible(cred: ResidentCredential, scope: string | undefined): boolean {
    return scope === undefined || cred.scope === scope;
  }

  residentCount(scope: string | undefined): number {
    let n = 0;
    for (const c of this.state.credentials) if (this.visible(c, scope)) n++;
    return n;
  }

  remainingResidentSlots(): number {
    return Math.max(0, this.config.maxResidentCredentials - this.state.credentials.length);
  }

  protocol(version: number): PinUvAuthProtocol | undefined {
    return this.pinProtocols.get(version);
  }

  /** §6.5.5.1 initialize()/reset of the volatile PIN state: new key-agreement keys and a new token. */
  resetPinUvAuthState(): void {
    for (const p of this.pinProtocols.values()) p.regenerate();
    this.token.reset();
  }

  /** authenticatorReset: new master secret (old ids become foreign), no credentials, no PIN. */
  wipe(): void {
    this.state.masterSecret = this.random.bytes(32);
    this.state.credentials = [];
    this.state.pin = undefined;
    this.state.pinRetries = MAX_PIN_RETRIES;
    this.state.minPinLength = DEFAULT_MIN_PIN_LENGTH;
    this.state.forcePinChange = false;
    this.deriveKeys();
    this.openedIds.clear();
    this.reindex();
    this.keyCache.clear();
    this.consecutivePinFailures = 0;
    this.assertionCursor = undefined;
    this.enumerationCursor = undefined;
    this.resetPinUvAuthState();
  }

  /**
   * Test of user presence: asks the presence port, reporting KEEPALIVE UPNEEDED while the prompt is up, and
   * answers the typed outcome (a request whose signal aborted is `cancelled`, asked or not).
   */
  async checkPresence(ctx: RequestContext, request: PresenceRequest): Promise<PresenceOutcome> {
    if (ctx.signal.aborted) return 'cancelled';
    ctx.onStatus(STATUS_UPNEEDED);
    try {
      return await askPresence(this.presence, request, ctx.signal);
    } finally {
      ctx.onStatus(STATUS_PROCESSING);
    }
  }

  /**
   * Test of user presence for a CTAP2 command: goes on when approved, else throws the status the spec names
   * for the outcome and command (agent/presence/outcome-status.ts: denied → OPERATION_DENIED, cancelled →
   * KEEPALIVE_CANCEL, timeout → USER_ACTION_TIMEOUT or, for makeCredential/getAssertion, OPERATION_DENIED).
   */
  async requirePresence(ctx: RequestContext, request: PresenceRequest): Promise<void> {
    const outcome = await this.checkPresence(ctx, request);
    if (outcome !== 'approved') throw new CtapError(ctap2PresenceStatus(outcome, request.action));
  }
}
