/**
 * Checks of the state directory: this installation's tunnel identity (created by `keytunnel id` or the first
 * agent/gateway run) and the trusted peers — `trusted-peers`, plus on an agent the gateways its policy file
 * (`gateways.json`) names, which the agent trusts under their policy names — with none every tunnel is refused.
 */
import { join } from 'node:path';
import { IDENTITY_FILE, parseIdentityPem, type Identity } from '../../tunnel/identity.ts';
import { PolicyConfig } from '../../agent/policy/config.ts';
import { readTrustFile, TrustSet, type TrustEntry } from '../../tunnel/trust.ts';
import { fail, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

/** An identity file is ~1 KiB; anything past this is not one. */
const MAX_IDENTITY_BYTES = 16 * 1024;

export interface IdentityCheck {
  readonly finding: Finding;
  readonly identity?: Identity;
}

export async function checkIdentity(ports: DoctorPorts, stateDir: string): Promise<IdentityCheck> {
  const file = join(stateDir, IDENTITY_FILE);
  const pem = await ports.readText(file, MAX_IDENTITY_BYTES + 1);
  if (pem === undefined) {
    return {
      finding: warn('identity', `no tunnel identity in ${stateDir} yet`, `keytunnel id --state-dir ${stateDir} (creates it and prints the fingerprint)`),
    };
  }
  try {
    if (pem.length > MAX_IDENTITY_BYTES) throw new Error(`${file} is larger than ${MAX_IDENTITY_BYTES} bytes`);
    const identity = parseIdentityPem(pem, file);
    return { finding: ok('identity', `this installation is ${identity.fingerprint}`), identity };
  } catch (err) {
    return {
      finding: fail('identity', `the identity is unusable: ${(err as Error).message}`, `move ${file} aside and run keytunnel id (peers must then trust the new fingerprint)`),
    };
  }
}

/** Everyone this state dir trusts: the trust file, then the gateways of the agent's policy file. */
export async function loadStateDirTrust(stateDir: string): Promise<TrustSet> {
  const fromFile = await readTrustFile(stateDir);
  const fromPolicy = (await PolicyConfig.load(stateDir))
    .list()
    .map((p): TrustEntry => ({ fingerprint: p.fingerprint, name: p.name, source: 'policy' }));
  return new TrustSet([...fromFile, ...fromPolicy]);
}

export async function checkTrust(stateDir: string): Promise<Finding> {
  try {
    const peers = (await loadStateDirTrust(stateDir)).entries();
    if (peers.length === 0) {
      return fail(
        'trust',
        `no trusted peer in ${stateDir}: every tunnel will be refused`,
        `keytunnel trust add <peer fingerprint> --name <name> --state-dir ${stateDir} (the peer prints its fingerprint with keytunnel id)`,
      );
    }
    const names = peers.map((p) => p.name ?? `${p.fingerprint.slice(0, 11)}…`);
    return ok('trust', `${peers.length} trusted peer${peers.length === 1 ? '' : 's'}: ${names.join(', ')}`);
  } catch (err) {
    return fail('trust', `the trust or policy file cannot be read: ${(err as Error).message}`, 'fix or delete the named line, then keytunnel trust list');
  }
}
