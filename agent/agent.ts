/**
 * The agent (runs on the user's machine): exports authenticators — the soft authenticator and/or real keys — to
 * every connected gateway, one GatewaySession (agent/session.ts) per authenticated tunnel peer.
 *
 * - The export list (id, label, transport, flags, cached getInfo) goes to each gateway right after HELLO and again
 *   whenever it changes: a key plugged in or removed (hot-plug) or a getInfo that changed (e.g. after setPIN the
 *   `clientPin` option flips). Each gateway answers getInfo from that cache with zero round trips, so the agent
 *   refreshes the cache after the requests that can change it (setPIN, changePIN, reset, config, makeCredential,
 *   credential deletion) and re-announces BEFORE the RESPONSE goes out (frames on one connection are ordered, so
 *   the gateway never serves a stale getInfo after the answer).
 * - A removed authenticator's in-flight requests are aborted on every session.
 * - The per-gateway policy seam: `view` (see AuthenticatorView) wraps each authenticator per gateway.
 *
 * `AgentCore` is transport-agnostic (`attachGateway` takes an authenticated connection after HELLO);
 * `startAgent` adds the tunnel: listen for gateways (several at once), or dial one with auto-reconnect.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from '../protocol/logger.ts';
import { equalBytes } from '../protocol/bytes.ts';
import type { Authenticator } from '../protocol/authenticator.ts';
import {
  CTAP2_CLIENT_PIN,
  CTAP2_CONFIG,
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_GET_INFO,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_OK,
  CTAP2_RESET,
} from '../protocol/ctap2.ts';
import { CLIENT_PIN_CHANGE_PIN, CLIENT_PIN_PARAM_SUBCOMMAND, CLIENT_PIN_SET_PIN } from '../protocol/client-pin.ts';
import { CRED_MGMT_DELETE_CREDENTIAL, CRED_MGMT_PARAM_SUBCOMMAND } from '../protocol/credential-management.ts';
import { decode, isCborMap, type CborValue } from '../protocol/cbor.ts';
import { MAX_AUTHENTICATORS, MAX_FRAME_LENGTH, MAX_GET_INFO, type ExportedAuthenticator, type Frame, type RequestFrame } from '../protocol/tunnel.ts';
import { startSide, type PeerHandlers, type PeerLink, type SideOptions } from '../tunnel/endpoint.ts';
import { GatewaySession, identityView, type AuthenticatorView, type GatewayIdentity, type SessionHost } from './session.ts';

/** What the agent needs from one authenticated gateway connection, and what it hands back. */
export type GatewayConnection = PeerLink;
export type GatewayConnectionHandlers = PeerHandlers;

export interface AgentCoreOptions {
  readonly logger: Logger;
  /** The policy seam (default: identity). */
  readonly view?: AuthenticatorView;
  /** How long to wait for an authenticator's getInfo when it is added (ms, default 10 s). */
  readonly getInfoTimeoutMs?: number;
  /**
   * The name a gateway goes by (in prompts, logs and RequestOrigin.gatewayName). The name a gateway announces in
   * HELLO is chosen by the untrusted VM, so a name the user gave it when trusting it wins (startAgent passes the
   * trust set's names); default: the announced name.
   */
  readonly gatewayName?: (fingerprint: string, announced: string) => string;
}

interface Exported {
  readonly auth: Authenticator;
  getInfo: Uint8Array;
}

/**
 * Requests after which getInfo may differ (CTAP 2.1 PS 2021-06-15 §6.4 fields that are state: options.clientPin,
 * forcePINChange, minPINLength, remainingDiscoverableCredentials, ...). Deliberately narrow: the refresh is a real
 * getInfo sent to the authenticator, and an extra command in the middle of a stateful sequence (credential-management
 * enumerate → GetNext, getAssertion → getNextAssertion, bio enrollment) would end that sequence
 * (CTAP2_ERR_NOT_ALLOWED). None of the commands below is the start of such a sequence.
 */
function mayChangeGetInfo(payload: Uint8Array): boolean {
  const cmd = payload[0];
  if (cmd === CTAP2_MAKE_CREDENTIAL || cmd === CTAP2_RESET || cmd === CTAP2_CONFIG) return true;
  if (cmd === CTAP2_CLIENT_PIN) {
    // §6.5.5: of the clientPIN subcommands only setPIN and changePIN change getInfo.
    const sub = cborMapIntValue(payload, CLIENT_PIN_PARAM_SUBCOMMAND);
    return sub === CLIENT_PIN_SET_PIN || sub === CLIENT_PIN_CHANGE_PIN;
  }
  if (cmd === CTAP2_CREDENTIAL_MANAGEMENT || cmd === CTAP2_CREDENTIAL_MANAGEMENT_PRE) {
    // §6.8: deleteCredential frees a discoverable-credential slot.
    return cborMapIntValue(payload, CRED_MGMT_PARAM_SUBCOMMAND) === CRED_MGMT_DELETE_CREDENTIAL;
  }
  return false;
}

/** How long a getInfo refresh may hold back the answer it follows (ms). */
const REFRESH_TIMEOUT_MS = 3000;

/** The small-integer value of integer key `key` in the CBOR map after the command byte, or undefined. */
function cborMapIntValue(payload: Uint8Array, key: number): number | undefined {
  let map: CborValue;
  try {
    map = decode(payload.subarray(1), { canonical: false });
  } catch {
    return undefined;
  }
  if (!isCborMap(map)) return undefined;
  const v = map.get(key);
  return typeof v === 'number' ? v : undefined;
}

export class AgentCore {
  private readonly exported = new Map<string, Exported>();
  private readonly sessions = new Set<GatewaySession>();
  private readonly view: AuthenticatorView;
  private readonly log: Logger;
  private readonly getInfoTimeoutMs: number;
  private readonly host: SessionHost;
  private readonly gatewayName: (fingerprint: string, announced: string) => string;
  private closed = false;

  constructor(options: AgentCoreOptions) {
    this.gatewayName = options.gatewayName ?? ((_fp, announced) => announced);
    this.log = options.logger;
    this.view = options.view ?? identityView;
    this.getInfoTimeoutMs = options.getInfoTimeoutMs ?? 10_000;
    this.host = {
      lookup: (id) => this.exported.get(id)?.auth,
      exported: () => this.list(),
      afterRequest: (id, frame) => this.afterRequest(id, frame),
    };
  }

  /**
   * The current export list (as sent in AUTHENTICATORS). Should the whole frame exceed MAX_FRAME_LENGTH (many keys
   * with large getInfo answers), the largest getInfo caches are left out until it fits: the gateway then forwards
   * those authenticators' getInfo requests instead of answering them locally.
   */
  list(): ExportedAuthenticator[] {
    const out: ExportedAuthenticator[] = [];
    for (const { auth, getInfo } of this.exported.values()) {
      const d = auth.descriptor;
      out.push({ id: d.id, label: d.label, transport: d.transport === 'soft' ? 'soft' : 'hid', ctap1: d.ctap1, wink: d.wink, getInfo });
    }
    // TYPE + count, then per entry: str8 id, str16 label, transport, flags, bytes16 getInfo (protocol/README.md).
    const entrySize = (a: ExportedAuthenticator): number =>
      1 + Buffer.byteLength(a.id) + 2 + Buffer.byteLength(a.label) + 2 + 2 + a.getInfo.length;
    let size = 1 + 2 + out.reduce((n, a) => n + entrySize(a), 0);
    if (size > MAX_FRAME_LENGTH) {
      const bySize = [...out.keys()].sort((i, j) => out[j].getInfo.length - out[i].getInfo.length);
      for (const i of bySize) {
        if (size <= MAX_FRAME_LENGTH) break;
        size -= out[i].getInfo.length;
        out[i] = { ...out[i], getInfo: new Uint8Array(0) };
      }
      this.log.warn({ authenticators: out.length }, 'the export list is too long for one frame; some getInfo caches are left out');
    }
    return out;
  }

  /** The connected gateways. */
  gateways(): GatewayIdentity[] {
    return [...this.sessions].map((s) => s.gateway);
  }

  /**
   * Export an authenticator (fetching its getInfo first, unless given) and announce it to every gateway.
   * A 'remote' authenticator cannot be re-exported.
   */
  async add(auth: Authenticator, getInfo?: Uint8Array): Promise<void> {
    const d = auth.descriptor;
    if (d.transport === 'remote') throw new Error(`cannot export a remote authenticator (${d.id})`);
    if (this.exported.has(d.id)) throw new Error(`authenticator ${d.id} is already exported`);
    if (this.exported.size >= MAX_AUTHENTICATORS) throw new Error(`at most ${MAX_AUTHENTICATORS} authenticators can be exported`);
    const info = getInfo ?? (await this.fetchGetInfo(auth, this.getInfoTimeoutMs)) ?? new Uint8Array(0);
    this.exported.set(d.id, { auth, getInfo: info });
    this.log.info({ authenticator: d.id, transport: d.transport }, `exporting "${d.label}"`);
    this.announceAll();
  }

  /** Stop exporting an authenticator: its in-flight requests are aborted and every gateway is told. */
  remove(id: string): boolean {
    const entry = this.exported.get(id);
    if (entry === undefined) return false;
    this.exported.delete(id);
    for (const s of this.sessions) s.abortAuthenticator(id);
    this.log.info({ authenticator: id }, `no longer exporting "${entry.auth.descriptor.label}"`);
    this.announceAll();
    return true;
  }

  /** An authenticated gateway connection is up (HELLO done): start a session and announce the list. */
  attachGateway(connection: GatewayConnection): GatewayConnectionHandlers {
    if (this.closed) {
      connection.close('agent shutting down');
      return { frame: () => {}, closed: () => {} };
    }
    const gateway: GatewayIdentity = {
      fingerprint: connection.fingerprint,
      name: this.gatewayName(connection.fingerprint, connection.name),
    };
    const session = new GatewaySession(
      gateway,
      { send: (f) => connection.send(f), close: (reason) => connection.close(reason) },
      this.host,
      this.view,
      this.log,
    );
    this.sessions.add(session);
    this.log.info({ gateway: gateway.fingerprint, name: gateway.name, announced: connection.name }, 'gateway connected');
    try {
      session.announce();
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not announce the authenticators');
    }
    let gone = false;
    return {
      frame: (frame) => session.handleFrame(frame),
      closed: () => {
        if (gone) return;
        gone = true;
        session.handleClose();
        this.sessions.delete(session);
        this.log.info({ gateway: gateway.fingerprint, name: gateway.name }, 'gateway disconnected');
      },
    };
  }

  /** Abort everything in flight (shutdown). Connections are closed by the tunnel layer. */
  close(): void {
    this.closed = true;
    for (const s of this.sessions) s.handleClose();
    this.sessions.clear();
  }

  private announceAll(): void {
    for (const s of this.sessions) {
      try {
        s.announce();
      } catch (err) {
        this.log.warn({ gateway: s.gateway.fingerprint, err: String(err) }, 'could not announce the authenticators');
      }
    }
  }

  private async afterRequest(id: string, frame: RequestFrame): Promise<void> {
    if (frame.kind !== 'cbor' || !mayChangeGetInfo(frame.payload)) return;
    const entry = this.exported.get(id);
    if (entry === undefined) return;
    // Bounded: a hardware key serves one request at a time, and this answer waits for the refresh.
    const fresh = await this.fetchGetInfo(entry.auth, REFRESH_TIMEOUT_MS);
    // On failure keep the previous cache rather than dropping it.
    if (fresh === null || this.exported.get(id) !== entry || equalBytes(fresh, entry.getInfo)) return;
    entry.getInfo = fresh;
    this.log.debug({ authenticator: id }, 'getInfo changed; re-announcing');
    this.announceAll();
  }

  /** authenticatorGetInfo (CTAP 2.1 §6.4); null when it failed (e.g. a U2F-only key, or a timeout). */
  private async fetchGetInfo(auth: Authenticator, timeoutMs: number): Promise<Uint8Array | null> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const answer = await auth.request('cbor', Uint8Array.of(CTAP2_GET_INFO), {
        signal: controller.signal,
        onStatus: () => {},
      });
      if (answer.length < 2 || answer[0] !== CTAP2_OK || answer.length > MAX_GET_INFO) {
        this.log.warn({ authenticator: auth.descriptor.id }, 'getInfo failed; the gateway forwards getInfo instead');
        return null;
      }
      return answer;
    } catch (err) {
      this.log.warn({ authenticator: auth.descriptor.id, err: String(err) }, 'getInfo failed; the gateway forwards getInfo instead');
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tunnel wiring: listen for gateways, or dial one with auto-reconnect.

/** Exactly one of listen / connect (SideOptions), and what the agent core needs. */
export interface AgentOptions extends SideOptions {
  readonly view?: AuthenticatorView;
  readonly getInfoTimeoutMs?: number;
}

export interface RunningAgent {
  readonly core: AgentCore;
  /** The tunnel listener's bound address (when listening). */
  readonly address: AddressInfo | undefined;
  /** Stop listening/dialing, abort everything in flight, close every connection. */
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.logger;
  const core = new AgentCore({
    logger: log,
    view: options.view,
    getInfoTimeoutMs: options.getInfoTimeoutMs,
    gatewayName: (fingerprint, announced) => options.trust.lookup(fingerprint)?.name ?? announced,
  });
  const endpoint = await startSide('agent', options, (peer) => core.attachGateway(peer));
  return {
    core,
    address: endpoint.address,
    close: async () => {
      core.close();
      await endpoint.close();
    },
  };
}
