/**
 * Per-gateway policy: the agent's own file (`<state-dir>/gateways.json`), never influenced by the untrusted VM.
 * Each trusted gateway, by certificate fingerprint, gets:
 *   name      shown in consent prompts and audit lines;
 *   allowRps  RP IDs this VM may use (exact, "*.suffix", "*" for any, or U2F AppID URLs) — see rp-match.ts;
 *   scope     "per-gateway" (default): soft-authenticator credentials made through this gateway are visible only
 *             to it; "shared": every credential is visible;
 *   approve   "touch" (a hardware key's own touch suffices) or "agent" (also confirm on the agent).
 *
 *   {
 *     "gateways": {
 *       "3f:a1:…:9c": { "name": "customer-a", "allowRps": ["login.microsoft.com", "*.contoso.com"],
 *                       "scope": "per-gateway", "approve": "agent" }
 *     }
 *   }
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseFingerprint } from '../../tunnel/fingerprint.ts';
import { makeRenameDurable } from '../fs-durable.ts';
import { ANY_RP, validateRpPattern } from './rp-match.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

export const POLICY_FILE = 'gateways.json';

export type Scope = 'per-gateway' | 'shared';
export type Approve = 'touch' | 'agent';

export interface GatewayPolicy {
  readonly fingerprint: string;
  readonly name: string;
  readonly allowRps: readonly string[];
  readonly scope: Scope;
  readonly approve: Approve;
}

export class PolicyConfigError extends KeytunnelError {
  override readonly name = 'PolicyConfigError';
  readonly code = 'POLICY_CONFIG';
}

/** Canonical fingerprint form (tunnel/fingerprint.ts), with the config's error type. */
export function normalizeFingerprint(fp: string): string {
  try {
    return parseFingerprint(fp);
  } catch (err) {
    throw new PolicyConfigError((err as Error).message);
  }
}

/** Short form for prompts: the first four bytes. */
export function shortFingerprint(fp: string): string {
  return `${fp.slice(0, 11)}…`;
}

/** What applies to a gateway that is trusted (e.g. `--trust FP`) but has no entry in the file. */
export function defaultPolicy(fingerprint: string): GatewayPolicy {
  return { fingerprint, name: shortFingerprint(fingerprint), allowRps: [ANY_RP], scope: 'per-gateway', approve: 'touch' };
}

export class PolicyConfig {
  private constructor(
    readonly path: string,
    private readonly entries: Map<string, GatewayPolicy>,
  ) {}

  static async load(stateDir: string): Promise<PolicyConfig> {
    const path = join(stateDir, POLICY_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new PolicyConfig(path, new Map());
      throw err;
    }
    return new PolicyConfig(path, parsePolicyFile(text, path));
  }

  /** The trusted gateways (fingerprints) this file names. */
  fingerprints(): string[] {
    return [...this.entries.keys()];
  }

  list(): GatewayPolicy[] {
    return [...this.entries.values()];
  }

  get(fingerprint: string): GatewayPolicy | undefined {
    return this.entries.get(normalizeFingerprint(fingerprint));
  }

  /** The policy for a gateway: its entry, or the default for a gateway trusted on the command line. */
  resolve(fingerprint: string): GatewayPolicy {
    return this.get(fingerprint) ?? defaultPolicy(normalizeFingerprint(fingerprint));
  }

  /** Add or update an entry; unspecified fields keep their current (or default) value. */
  upsert(fingerprint: string, change: Partial<Omit<GatewayPolicy, 'fingerprint'>>): GatewayPolicy {
    const fp = normalizeFingerprint(fingerprint);
    const merged = { ...(this.entries.get(fp) ?? defaultPolicy(fp)), ...change, fingerprint: fp };
    const entry = validateEntry(fp, merged, this.path);
    this.entries.set(fp, entry);
    return entry;
  }

  remove(fingerprint: string): boolean {
    return this.entries.delete(normalizeFingerprint(fingerprint));
  }

  /** Written atomically (temp file, fsync, rename, makeRenameDurable): a crash leaves the old or the new file. */
  async save(): Promise<void> {
    const gateways: Record<string, Omit<GatewayPolicy, 'fingerprint'>> = {};
    for (const { fingerprint, ...rest } of this.entries.values()) gateways[fingerprint] = rest;
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`;
    const file = await open(tmp, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify({ gateways }, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    await makeRenameDurable(dir); // directory fsync on POSIX; on Windows the rename is durable by itself
  }
}

function parsePolicyFile(text: string, path: string): Map<string, GatewayPolicy> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PolicyConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const gateways = (json as { gateways?: unknown } | null)?.gateways;
  if (typeof gateways !== 'object' || gateways === null || Array.isArray(gateways)) {
    throw new PolicyConfigError(`${path}: expected {"gateways": {"<fingerprint>": {...}}}`);
  }
  const entries = new Map<string, GatewayPolicy>();
  for (const [key, value] of Object.entries(gateways)) {
    let fp: string;
    try {
      fp = normalizeFingerprint(key);
    } catch (err) {
      throw new PolicyConfigError(`${path}: ${(err as Error).message}`);
    }
    if (typeof value !== 'object' || value === null) throw new PolicyConfigError(`${path}: ${fp}: expected an object`);
    entries.set(fp, validateEntry(fp, { ...defaultPolicy(fp), ...(value as object) }, path));
  }
  return entries;
}

function validateEntry(fp: string, e: Record<string, unknown>, path: string): GatewayPolicy {
  const where = `${path}: gateway ${fp}`;
  if (typeof e.name !== 'string' || e.name.length === 0 || e.name.length > 64 || /[\u0000-\u001f]/.test(e.name)) {
    throw new PolicyConfigError(`${where}: "name" must be 1-64 printable characters`);
  }
  if (!Array.isArray(e.allowRps) || !e.allowRps.every((p) => typeof p === 'string')) {
    throw new PolicyConfigError(`${where}: "allowRps" must be a list of RP IDs`);
  }
  let allowRps: string[];
  try {
    allowRps = [...new Set((e.allowRps as string[]).map(validateRpPattern))];
  } catch (err) {
    throw new PolicyConfigError(`${where}: ${(err as Error).message}`);
  }
  if (e.scope !== 'per-gateway' && e.scope !== 'shared') {
    throw new PolicyConfigError(`${where}: "scope" must be "per-gateway" or "shared"`);
  }
  if (e.approve !== 'touch' && e.approve !== 'agent') {
    throw new PolicyConfigError(`${where}: "approve" must be "touch" or "agent"`);
  }
  return { fingerprint: fp, name: e.name, allowRps, scope: e.scope, approve: e.approve };
}
