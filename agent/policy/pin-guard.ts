/**
 * The agent's guard over authenticatorClientPIN (CTAP 2.1 PS 2021-06-15 §6.5) requests from VMs (issue 11, finding 3).
 *
 * An authenticator's PIN is shared by every VM: three wrong PINs in a row block PIN use for everybody until a
 * power cycle, eight burn the key (§6.5.5.6 / §6.5.5.7: pinRetries), and setPIN on a PIN-less key locks every
 * other tenant out of credentials that need UV. So, one guard per agent (shared by the views of all gateways and
 * living as long as the agent, so a reconnect changes nothing):
 *
 *   - setPIN (0x03) and changePIN (0x04) need a person's confirmation on the agent through the Presence port, on
 *     every authenticator and whatever the gateway's `approve`; a denial is CTAP2_ERR_OPERATION_DENIED, a prompt
 *     nobody answered CTAP2_ERR_USER_ACTION_TIMEOUT (agent/presence/outcome-status.ts), and nothing is forwarded.
 *   - Wrong PINs are counted per gateway fingerprint and authenticator: an answer CTAP2_ERR_PIN_INVALID,
 *     CTAP2_ERR_PIN_BLOCKED or CTAP2_ERR_PIN_AUTH_BLOCKED to a request that carries a PIN counts, and so does a
 *     PIN-carrying request whose answer never came (cancelled, transport failure: the key may have spent a
 *     retry). A success (0x00) of a PIN-verifying subcommand resets the count. Per authenticator, because a
 *     correct PIN on one key must not hide wrong PINs on another.
 *   - After MAX_WRONG_PINS_PER_GATEWAY consecutive wrong PINs the gateway is blocked: the guard itself answers
 *     CTAP2_ERR_PIN_AUTH_BLOCKED to every clientPIN request of that gateway except the ones that carry no PIN
 *     and change nothing (getPINRetries, getKeyAgreement, getUVRetries), and forwards nothing. Only a person
 *     unblocks it: `keytunnel trust unblock NAME|FP` (which deletes the gateway's block file, see
 *     PinBlockStore) or an agent restart (which clears them all). A presence answer never unblocks.
 *   - One gateway's PIN attempts on one authenticator are serialised, so two attempts in flight cannot both pass
 *     a count of 1: one VM can never cost a key more than MAX_WRONG_PINS_PER_GATEWAY retries.
 *
 * The guard never sees or logs a PIN: it reads only the subCommand of the request and the status byte of the
 * answer.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { STATUS_UPNEEDED, type KeepaliveStatus, type RequestKind, type RequestOrigin } from '../../protocol/authenticator.ts';
import { decode, isCborMap } from '../../protocol/cbor.ts';
import type { Logger } from '../../protocol/logger.ts';
import {
  CLIENT_PIN_CHANGE_PIN,
  CLIENT_PIN_GET_KEY_AGREEMENT,
  CLIENT_PIN_GET_PIN_RETRIES,
  CLIENT_PIN_GET_PIN_TOKEN,
  CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
  CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS,
  CLIENT_PIN_GET_UV_RETRIES,
  CLIENT_PIN_PARAM_SUBCOMMAND,
  CLIENT_PIN_SET_PIN,
} from '../../protocol/client-pin.ts';
import {
  CTAP2_CLIENT_PIN,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_OK,
} from '../../protocol/ctap2.ts';
import { parseFingerprint } from '../../tunnel/fingerprint.ts';
import { askPresence } from '../presence/ask.ts';
import { ctap2PresenceStatus } from '../presence/outcome-status.ts';
import type { Presence, PresenceRequest } from '../presence/port.ts';
import type { Decision } from './audit.ts';

/** Consecutive wrong PINs one gateway may cause on one authenticator before the agent blocks it (issue 11). */
export const MAX_WRONG_PINS_PER_GATEWAY = 2;
/** The audit reason of every request the guard refuses because the gateway is blocked. */
export const PIN_BLOCK_REASON = 'PIN attempts blocked for this gateway';
/** Directory (in the state dir) holding one file per blocked gateway. */
export const PIN_BLOCKS_DIR = 'pin-blocks';
/** Longest gateway name written to a block file. */
const MAX_BLOCK_NAME = 256;
/** Largest block file read back. */
const MAX_BLOCK_FILE_BYTES = 4096;

/** What the guard does with a clientPIN request, by subCommand (CTAP 2.1 §6.5.5). */
export interface PinRequestClass {
  /** The subCommand, when the request could be read (undefined: no parameters or not a map with an integer). */
  readonly subCommand?: number;
  /** getPINRetries, getKeyAgreement, getUVRetries: no PIN, no change; pass even for a blocked gateway. */
  readonly free: boolean;
  /** setPIN, changePIN: a person confirms on the agent first. */
  readonly confirm?: 'setPin' | 'changePin';
  /** The request carries a PIN the key verifies (changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions),
   *  or we cannot tell that it does not: a lost answer counts as a wrong PIN. */
  readonly carriesPin: boolean;
  /** A success proves the gateway knows the PIN (changePIN, getPinToken, ...UsingPinWithPermissions). */
  readonly verifiesPin: boolean;
}

/** Classify a CTAP2 clientPIN payload (command byte + CBOR). Anything unreadable is treated as carrying a PIN. */
export function classifyClientPin(payload: Uint8Array): PinRequestClass {
  let subCommand: number | undefined;
  if (payload.length > 1) {
    try {
      // As lenient as the policy's own parse (request-summary.ts), which refused anything it cannot decode.
      const params = decode(payload.subarray(1), { canonical: false });
      const sub = isCborMap(params) ? params.get(CLIENT_PIN_PARAM_SUBCOMMAND) : undefined;
      if (typeof sub === 'number' && Number.isSafeInteger(sub)) subCommand = sub;
    } catch {
      subCommand = undefined;
    }
  }
  switch (subCommand) {
    case CLIENT_PIN_GET_PIN_RETRIES:
    case CLIENT_PIN_GET_KEY_AGREEMENT:
    case CLIENT_PIN_GET_UV_RETRIES:
      return { subCommand, free: true, carriesPin: false, verifiesPin: false };
    case CLIENT_PIN_SET_PIN:
      // §6.5.5.5: setPIN carries only the new PIN; it verifies nothing and costs no retry.
      return { subCommand, free: false, confirm: 'setPin', carriesPin: false, verifiesPin: false };
    case CLIENT_PIN_CHANGE_PIN:
      // §6.5.5.6: pinHashEnc of the current PIN, checked (and a retry spent) before the new PIN is set.
      return { subCommand, free: false, confirm: 'changePin', carriesPin: true, verifiesPin: true };
    case CLIENT_PIN_GET_PIN_TOKEN:
    case CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS:
      // §6.5.5.7.1 / §6.5.5.7.2: pinHashEnc, a retry spent before comparing.
      return { subCommand, free: false, carriesPin: true, verifiesPin: true };
    case CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS:
      // §6.5.5.7.3: built-in UV (a finger on the key), no PIN; still refused while the gateway is blocked.
      return { subCommand, free: false, carriesPin: false, verifiesPin: false };
    default:
      // Unknown or vendor subcommands, or a subCommand we could not read: assume the worst.
      return { subCommand, free: false, carriesPin: true, verifiesPin: false };
  }
}

/** One blocked gateway, as written for `keytunnel trust unblock` / `trust list`. */
export interface PinBlock {
  readonly fingerprint: string;
  readonly name: string;
  /** ISO 8601. */
  readonly blockedAt: string;
  /** The authenticator on which the wrong PINs were tried. */
  readonly authenticator: string;
}

/**
 * Where blocks are kept so a separate process (the `trust unblock` CLI) can lift them. The running agent's
 * memory is authoritative; the store is only the channel through which a person says "unblock".
 */
export interface PinBlockStore {
  /** Record a block; resolves true once it is durable (a later `isBlocked` answers from it). */
  block(entry: PinBlock): Promise<boolean>;
  /** False once a person removed the block; true while it is there (and when that cannot be determined). */
  isBlocked(fingerprint: string): Promise<boolean>;
  /** Remove every block (the agent calls this when it starts: a restart unblocks every gateway). */
  clear(): Promise<void>;
}

/**
 * Blocks in `<state-dir>/pin-blocks/<fingerprint hex>.json`, one file per gateway (directory 0700, files 0600,
 * written atomically by temporary file + rename). One file per gateway, rather than one shared file, means the
 * agent and the CLI never read-modify-write the same file: `trust unblock` is a single unlink, and a block the
 * agent records at the same moment for another gateway cannot be lost.
 */
export class FilePinBlockStore implements PinBlockStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, PIN_BLOCKS_DIR);
  }

  fileOf(fingerprint: string): string {
    return join(this.dir, `${parseFingerprint(fingerprint).replace(/:/g, '')}.json`);
  }

  async block(entry: PinBlock): Promise<boolean> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.fileOf(entry.fingerprint);
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    const record: PinBlock = { ...entry, name: Array.from(entry.name).slice(0, MAX_BLOCK_NAME).join('') };
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    return true;
  }

  async isBlocked(fingerprint: string): Promise<boolean> {
    try {
      return (await lstat(this.fileOf(fingerprint))).isFile();
    } catch (err) {
      // Only "it is not there" unblocks; any other failure keeps the gateway blocked.
      return (err as NodeJS.ErrnoException).code !== 'ENOENT';
    }
  }

  /** Remove a gateway's block; true when there was one. */
  async remove(fingerprint: string): Promise<boolean> {
    try {
      await unlink(this.fileOf(fingerprint));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async clear(): Promise<void> {
    for (const name of await this.names()) {
      if (/^[0-9a-f]{64}\.json(\.tmp-.*)?$/.test(name)) await unlink(join(this.dir, name)).catch(() => {});
    }
  }

  /** The blocks on record (unreadable files are skipped). */
  async list(): Promise<PinBlock[]> {
    const blocks: PinBlock[] = [];
    for (const name of await this.names()) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
      try {
        const file = join(this.dir, name);
        if ((await lstat(file)).size > MAX_BLOCK_FILE_BYTES) continue;
        const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<PinBlock>;
        const fingerprint = parseFingerprint(String(parsed.fingerprint));
        if (fingerprint.replace(/:/g, '') !== name.slice(0, 64)) continue;
        blocks.push({
          fingerprint,
          name: typeof parsed.name === 'string' ? parsed.name : '',
          blockedAt: typeof parsed.blockedAt === 'string' ? parsed.blockedAt : '',
          authenticator: typeof parsed.authenticator === 'string' ? parsed.authenticator : '',
        });
      } catch {
        continue;
      }
    }
    return blocks;
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}

export interface PinGuardDeps {
  /** Asked before setPIN / changePIN. Its answer never lifts a block. */
  readonly presence: Presence;
  readonly store: PinBlockStore;
  readonly log?: Logger;
  /** Wall clock for block timestamps (Date.now semantics). */
  readonly now?: () => number;
}

/** Who is asking, and on which authenticator. */
export interface PinRequester {
  readonly origin: RequestOrigin & { readonly gatewayFingerprint: string; readonly gatewayName: string };
  readonly authenticator: string;
}

export interface PinRequestContext {
  readonly signal: AbortSignal;
  onStatus(status: KeepaliveStatus): void;
}

/** The guard answered the request itself; nothing may be forwarded. */
export interface PinRefusal {
  readonly refused: true;
  readonly answer: Uint8Array;
  readonly decision: Decision;
  readonly reason?: string;
}

/** The request may be forwarded; `settle` MUST be called exactly once with the authenticator's answer (undefined
 *  when none came: it threw). Until then the gateway's next PIN attempt on this authenticator waits. */
export interface PinPass {
  readonly refused: false;
  settle(answer: Uint8Array | undefined): void;
}

export type PinAdmission = PinRefusal | PinPass;

interface BlockState {
  readonly name: string;
  /** Resolves true when the block is on record in the store (only then may its absence there unblock). */
  readonly durable: Promise<boolean>;
}

export class PinGuard {
  private readonly now: () => number;
  /** Consecutive wrong PINs per gateway fingerprint, per authenticator id. */
  private readonly wrong = new Map<string, Map<string, number>>();
  private readonly blocked = new Map<string, BlockState>();
  /** Tail of each (gateway, authenticator) serialisation chain. */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly deps: PinGuardDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The agent's guard: clears every block left by an earlier run (a restart unblocks), then guards. */
  static async open(stateDir: string, presence: Presence, log?: Logger): Promise<PinGuard> {
    const store = new FilePinBlockStore(stateDir);
    await store.clear();
    return new PinGuard({ presence, store, log });
  }

  /** Whether a gateway is blocked right now (as far as this process knows). */
  isBlocked(fingerprint: string): boolean {
    return this.blocked.has(fingerprint);
  }

  /** Resolves once a gateway's block is on record in the store (true) or could not be recorded (false);
   *  false at once for a gateway that is not blocked. */
  async recorded(fingerprint: string): Promise<boolean> {
    return (await this.blocked.get(fingerprint)?.durable) ?? false;
  }

  /** Consecutive wrong PINs a gateway has on an authenticator. */
  wrongPins(fingerprint: string, authenticator: string): number {
    return this.wrong.get(fingerprint)?.get(authenticator) ?? 0;
  }

  /**
   * Decide on a request that passed the policy, before it is forwarded. Undefined for anything that is not a
   * guarded clientPIN request (forward it as usual); a refusal to answer as is; or a pass to settle.
   */
  async admit(kind: RequestKind, payload: Uint8Array, who: PinRequester, ctx: PinRequestContext): Promise<PinAdmission | undefined> {
    if (kind !== 'cbor' || payload[0] !== CTAP2_CLIENT_PIN) return undefined;
    const cls = classifyClientPin(payload);
    if (cls.free) return undefined;
    const fp = who.origin.gatewayFingerprint;
    const release = await this.acquire(`${fp}\n${who.authenticator}`, ctx.signal);
    if (!release) return cancelled();
    let passed = false;
    try {
      if (await this.stillBlocked(fp)) {
        return { refused: true, answer: Uint8Array.of(CTAP2_ERR_PIN_AUTH_BLOCKED), decision: 'refused-by-policy', reason: PIN_BLOCK_REASON };
      }
      if (cls.confirm) {
        const refusal = await this.confirm(cls.confirm, who, ctx);
        if (refusal) return refusal;
      }
      passed = true;
      let settled = false;
      return {
        refused: false,
        settle: (answer) => {
          if (settled) return;
          settled = true;
          try {
            this.count(cls, who, answer);
          } finally {
            release();
          }
        },
      };
    } finally {
      if (!passed) release();
    }
  }

  private async confirm(action: 'setPin' | 'changePin', who: PinRequester, ctx: PinRequestContext): Promise<PinRefusal | undefined> {
    const request: PresenceRequest = { action, origin: who.origin };
    ctx.onStatus(STATUS_UPNEEDED);
    const outcome = await askPresence(this.deps.presence, request, ctx.signal);
    if (outcome === 'cancelled') return cancelled();
    if (outcome === 'approved') return undefined;
    return {
      refused: true,
      answer: Uint8Array.of(ctap2PresenceStatus(outcome, action)),
      decision: outcome === 'timeout' ? 'timed-out' : 'denied-by-user',
    };
  }

  /** Count the answer of a forwarded request. */
  private count(cls: PinRequestClass, who: PinRequester, answer: Uint8Array | undefined): void {
    const status = answer && answer.length > 0 ? answer[0] : undefined;
    const fp = who.origin.gatewayFingerprint;
    const wrongPin =
      status === CTAP2_ERR_PIN_INVALID ||
      status === CTAP2_ERR_PIN_BLOCKED ||
      status === CTAP2_ERR_PIN_AUTH_BLOCKED ||
      // No answer: the key may have spent a retry before the answer was lost.
      (cls.carriesPin && (status === undefined || status === CTAP2_ERR_KEEPALIVE_CANCEL));
    if (status === CTAP2_OK && cls.verifiesPin) {
      const perAuth = this.wrong.get(fp);
      perAuth?.delete(who.authenticator);
      if (perAuth?.size === 0) this.wrong.delete(fp);
      return;
    }
    if (!wrongPin) return;
    const perAuth = this.wrong.get(fp) ?? new Map<string, number>();
    this.wrong.set(fp, perAuth);
    const n = (perAuth.get(who.authenticator) ?? 0) + 1;
    perAuth.set(who.authenticator, n);
    if (n >= MAX_WRONG_PINS_PER_GATEWAY && !this.blocked.has(fp)) this.block(who);
  }

  private block(who: PinRequester): void {
    const { gatewayFingerprint: fp, gatewayName: name } = who.origin;
    const entry: PinBlock = { fingerprint: fp, name, blockedAt: new Date(this.now()).toISOString(), authenticator: who.authenticator };
    const durable = this.deps.store.block(entry).catch((err: unknown) => {
      this.deps.log?.warn(
        { gateway: fp, err: String(err) },
        'cannot record the PIN block on disk; the gateway stays blocked until the agent restarts',
      );
      return false;
    });
    this.blocked.set(fp, { name, durable });
    this.deps.log?.warn(
      { gateway: fp, gatewayName: name, authenticator: who.authenticator },
      `${MAX_WRONG_PINS_PER_GATEWAY} wrong PINs in a row from this gateway: its PIN attempts are refused until ` +
        `\`keytunnel trust unblock ${fp}\` or an agent restart`,
    );
  }

  /** Whether the gateway is still blocked; lifts the block (and its counts) once a person removed it from the store. */
  private async stillBlocked(fp: string): Promise<boolean> {
    const state = this.blocked.get(fp);
    if (!state) return false;
    // A block that never reached the store cannot have been removed from it: only a restart lifts it.
    if (!(await state.durable)) return true;
    let onRecord: boolean;
    try {
      onRecord = await this.deps.store.isBlocked(fp);
    } catch {
      onRecord = true;
    }
    if (onRecord) return true;
    this.blocked.delete(fp);
    this.wrong.delete(fp);
    this.deps.log?.info({ gateway: fp, gatewayName: state.name }, 'PIN block lifted (keytunnel trust unblock)');
    return false;
  }

  /**
   * Serialise one gateway's PIN attempts on one authenticator. Resolves with the release function, or undefined
   * when the signal aborted while waiting.
   */
  private async acquire(key: string, signal: AbortSignal): Promise<(() => void) | undefined> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    // Forget the chain once its last holder is done (bounded memory: one entry per busy gateway+authenticator).
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    const done = (): void => release();
    if (signal.aborted) {
      done();
      return undefined;
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const outcome = await Promise.race([previous.then(() => 'ready' as const), aborted]);
    signal.removeEventListener('abort', onAbort!);
    if (outcome === 'aborted') {
      // Our slot in the chain opens as soon as the previous one does; the next waiter is not held up.
      done();
      return undefined;
    }
    return done;
  }
}

function cancelled(): PinRefusal {
  return { refused: true, answer: Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL), decision: 'cancelled' };
}
