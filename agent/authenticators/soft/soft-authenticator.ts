/**
 * The keytunnel soft authenticator: a complete CTAP 2.1 + CTAP1/U2F authenticator whose passkeys live in a
 * (caller-provided, typically encrypted on-disk) StateStore. Implements the project's Authenticator interface:
 * one CTAP message in, one answer out, one transaction at a time.
 *
 * Usage:
 *   const auth = await SoftAuthenticator.open({ store, presence });   // loads, or initialises + saves
 *   // or: const auth = new SoftAuthenticator({ store, presence }); await auth.open();
 *   const answer = await auth.request('cbor', Uint8Array.of(0x04), ctx); // authenticatorGetInfo
 *
 * Answers: CTAP2 status byte (+ CBOR) for 'cbor'; response data + SW1 SW2 for 'msg'. CTAP errors are answers;
 * even an internal failure (e.g. the store refusing a save) is answered (CTAP1_ERR_OTHER / SW 0x6F00), so a bad
 * request can never crash the caller. Nothing here logs.
 */
import { randomBytes } from 'node:crypto';
import type { Authenticator, AuthenticatorDescriptor, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import {
  CTAP1_ERR_INVALID_COMMAND,
  CTAP1_ERR_INVALID_LENGTH,
  CTAP1_ERR_OTHER,
  CTAP2_CLIENT_PIN,
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_ERR_REQUEST_TOO_LARGE,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_INFO,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_OK,
  CTAP2_RESET,
  CTAP2_SELECTION,
  ctap2Status,
} from '../../../protocol/ctap2.ts';
import { SW_NO_PRECISE_DIAGNOSIS, SW_WRONG_LENGTH, withStatusWord } from '../../../protocol/u2f.ts';
import { clientPin } from './client-pin.ts';
import { credentialManagement } from './credential-management.ts';
import { sha256 } from './crypto.ts';
import { KEYTUNNEL_AAGUID, SoftDevice, type SoftConfig } from './device.ts';
import { CtapError } from './errors.ts';
import { getAssertion, getNextAssertion } from './get-assertion.ts';
import { getInfo } from './get-info.ts';
import { MAX_MESSAGE_SIZE } from '../../../protocol/ctaphid.ts';
import { DEFAULT_MAX_RESIDENT_CREDENTIALS } from './limits.ts';
import { makeCredential } from './make-credential.ts';
import { decodeParams } from './parse.ts';
import type { Presence } from '../../presence/port.ts';
import type { Clock, Random, StateStore } from './ports.ts';
import { reset } from './reset.ts';
import { selection } from './selection.ts';
import { deserializeState, newState } from './state.ts';
import { attestationKey, generateU2fAttestation } from './u2f-attestation.ts';
import { u2f } from './u2f.ts';
import type { KeyObject } from 'node:crypto';

export { KEYTUNNEL_AAGUID } from './device.ts';
export { MemoryStateStore } from './memory-store.ts';
export { SoftStateError } from './state.ts';
export const SOFT_AUTHENTICATOR_LABEL = 'keytunnel soft authenticator';
/** §6.6: reset is allowed within 10 s of power-up. */
export const DEFAULT_RESET_WINDOW_MS = 10_000;
export const FIRMWARE_VERSION = 0x000100;

export interface SoftAuthenticatorOptions {
  readonly store: StateStore;
  readonly presence: Presence;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Override the AAGUID (16 bytes); default KEYTUNNEL_AAGUID. */
  readonly aaguid?: Uint8Array;
  readonly label?: string;
  /** How long after open() authenticatorReset is accepted (default 10 s, CTAP 2.1 PS 2021-06-15 §6.6). */
  readonly resetWindowMs?: number;
  readonly maxResidentCredentials?: number;
  /** RP IDs that may read minPINLength via the minPinLength extension. */
  readonly minPinLengthRpIds?: readonly string[];
  readonly firmwareVersion?: number;
  /** Attestation format when the platform expresses no preference (default "packed" self attestation). */
  readonly attestation?: 'packed' | 'none';
}

const systemClock: Clock = { now: () => Date.now() };
const systemRandom: Random = { bytes: (n) => randomBytes(n) };

export class SoftAuthenticator implements Authenticator {
  private readonly options: SoftAuthenticatorOptions;
  private opened: { device: SoftDevice; descriptor: AuthenticatorDescriptor } | undefined;
  private opening: Promise<this> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private u2fKey: { certificate: Uint8Array; key: KeyObject } | undefined;

  /** Configure; nothing is loaded until {@link open} (or use the static {@link SoftAuthenticator.open}). */
  constructor(options: SoftAuthenticatorOptions) {
    if (options.aaguid !== undefined && options.aaguid.length !== 16) throw new RangeError('aaguid must be 16 bytes');
    this.options = options;
  }

  /** Construct and {@link open} in one step. */
  static open(options: SoftAuthenticatorOptions): Promise<SoftAuthenticator> {
    return new SoftAuthenticator(options).open();
  }

  /** Alias of the static {@link SoftAuthenticator.open}. */
  static create(options: SoftAuthenticatorOptions): Promise<SoftAuthenticator> {
    return SoftAuthenticator.open(options);
  }

  /** Stable identity (derived from the public device id in the state). Available once open() has completed. */
  get descriptor(): AuthenticatorDescriptor {
    return this.ready().descriptor;
  }

  private ready(): { device: SoftDevice; descriptor: AuthenticatorDescriptor } {
    if (this.opened === undefined) throw new Error('SoftAuthenticator: open() has not completed');
    return this.opened;
  }

  private get device(): SoftDevice {
    return this.ready().device;
  }

  /**
   * Load the state from the store (or create and save a fresh one on first use) and "power up". Idempotent.
   * Rejects when the store rejects (wrong passphrase, corrupt file) or the state is malformed.
   */
  open(): Promise<this> {
    this.opening ??= this.load();
    return this.opening;
  }

  private async load(): Promise<this> {
    const options = this.options;
    const random = options.random ?? systemRandom;
    const clock = options.clock ?? systemClock;
    const config: SoftConfig = {
      aaguid: options.aaguid ?? KEYTUNNEL_AAGUID,
      label: options.label ?? SOFT_AUTHENTICATOR_LABEL,
      resetWindowMs: options.resetWindowMs ?? DEFAULT_RESET_WINDOW_MS,
      maxResidentCredentials: options.maxResidentCredentials ?? DEFAULT_MAX_RESIDENT_CREDENTIALS,
      minPinLengthRpIds: options.minPinLengthRpIds ?? [],
      firmwareVersion: options.firmwareVersion ?? FIRMWARE_VERSION,
      attestation: options.attestation ?? 'packed',
    };
    const loaded = await options.store.load();
    const fresh = loaded === null;
    const state = fresh ? newState((n) => random.bytes(n)) : deserializeState(loaded);
    const device = new SoftDevice(state, { store: options.store, presence: options.presence, clock, random, config });
    if (fresh) await device.save();
    const digest = Buffer.from(sha256(Buffer.from('keytunnel soft authenticator id', 'utf8'), state.deviceId));
    this.opened = {
      device,
      descriptor: {
        id: `soft-${digest.subarray(0, 12).toString('hex')}`,
        label: config.label,
        transport: 'soft',
        ctap1: true,
        wink: false,
      },
    };
    return this;
  }

  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    if (this.opened === undefined) return Promise.reject(new Error('SoftAuthenticator: open() has not completed'));
    // One transaction at a time, in arrival order.
    const run = this.queue.then(() => (kind === 'msg' ? this.handleMsg(payload, ctx) : this.handleCbor(payload, ctx)));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handleMsg(payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    // A U2F message ends any CTAP2 getNextAssertion / enumeration sequence.
    this.device.takeCursors();
    if (payload.length > MAX_MESSAGE_SIZE) return withStatusWord(SW_WRONG_LENGTH);
    try {
      return await u2f(this.device, payload, ctx, () => this.u2fAttestation());
    } catch {
      return withStatusWord(SW_NO_PRECISE_DIAGNOSIS);
    }
  }

  private async u2fAttestation(): Promise<{ certificate: Uint8Array; key: KeyObject }> {
    if (this.u2fKey === undefined) {
      let att = this.device.state.u2fAttestation;
      if (att === undefined) {
        att = await generateU2fAttestation(this.device.random.bytes(16));
        this.device.state.u2fAttestation = att;
        await this.device.save();
      }
      this.u2fKey = { certificate: att.certificate, key: attestationKey(att) };
    }
    return this.u2fKey;
  }

  private async handleCbor(payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const device = this.device;
    // §6.3 / §6.8: any other command ends a getNextAssertion or enumeration sequence — including one we refuse
    // below for its length or syntax. Only the GetNext that continues a sequence puts it back.
    const cursors = device.takeCursors();
    if (payload.length === 0) return ctap2Status(CTAP1_ERR_INVALID_LENGTH);
    if (payload.length > MAX_MESSAGE_SIZE) return ctap2Status(CTAP2_ERR_REQUEST_TOO_LARGE);
    const command = payload[0];
    try {
      let body: Uint8Array;
      switch (command) {
        case CTAP2_GET_INFO:
          body = getInfo(device);
          break;
        case CTAP2_MAKE_CREDENTIAL:
          body = await makeCredential(device, decodeParams(payload.subarray(1)), ctx);
          break;
        case CTAP2_GET_ASSERTION:
          body = await getAssertion(device, decodeParams(payload.subarray(1)), ctx);
          break;
        case CTAP2_GET_NEXT_ASSERTION:
          body = await getNextAssertion(device, cursors.assertion, ctx);
          break;
        case CTAP2_CLIENT_PIN:
          body = await clientPin(device, decodeParams(payload.subarray(1)));
          break;
        case CTAP2_RESET:
          body = await reset(device, ctx);
          break;
        case CTAP2_CREDENTIAL_MANAGEMENT:
        case CTAP2_CREDENTIAL_MANAGEMENT_PRE:
          body = await credentialManagement(
            device,
            decodeParams(payload.subarray(1)),
            ctx,
            cursors.enumeration,
            command === CTAP2_CREDENTIAL_MANAGEMENT_PRE,
          );
          break;
        case CTAP2_SELECTION:
          body = await selection(device, ctx);
          break;
        default:
          return ctap2Status(CTAP1_ERR_INVALID_COMMAND);
      }
      const out = new Uint8Array(1 + body.length);
      out[0] = CTAP2_OK;
      out.set(body, 1);
      return out;
    } catch (e) {
      if (e instanceof CtapError) return ctap2Status(e.status);
      // A bug or a store failure: answer, never crash the caller (and never echo the error: it could hold secrets).
      return ctap2Status(CTAP1_ERR_OTHER);
    }
  }
}
