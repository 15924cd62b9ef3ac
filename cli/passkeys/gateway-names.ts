/**
 * Names of credential scopes as a person knows them. A discoverable credential made through a gateway whose
 * policy scope is `per-gateway` carries that gateway's certificate fingerprint as its scope
 * (agent/policy/policy-authenticator.ts); a credential without a scope is "shared". The names come from what a
 * person set on this machine — gateways.json (agent/policy/config.ts) first, then the trust file
 * (tunnel/trust.ts) — never from a name a gateway announced.
 */
import { PolicyConfig, shortFingerprint, type GatewayPolicy } from '../../agent/policy/config.ts';
import { displayText } from '../../agent/display-text.ts';
import { parseFingerprint } from '../../tunnel/fingerprint.ts';
import { readTrustFile, type TrustEntry } from '../../tunnel/trust.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

/** What `--json` and the table call an unscoped credential. */
export const SHARED_SCOPE_NAME = 'shared';

export class GatewayLookupError extends KeytunnelError {
  override readonly name = 'GatewayLookupError';
  readonly code = 'GATEWAY_LOOKUP';
}

export class GatewayNames {
  private constructor(
    private readonly policies: readonly GatewayPolicy[],
    private readonly peers: readonly TrustEntry[],
  ) {}

  static async load(stateDir: string): Promise<GatewayNames> {
    return new GatewayNames((await PolicyConfig.load(stateDir)).list(), await readTrustFile(stateDir));
  }

  /** The trusted name of a scope: "shared" for none, the gateway's name, or its short fingerprint when unnamed. */
  nameOf(scope: string | undefined): string {
    if (scope === undefined) return SHARED_SCOPE_NAME;
    const name = this.policies.find((p) => p.fingerprint === scope)?.name ?? this.peers.find((p) => p.fingerprint === scope)?.name;
    return name ?? shortFingerprint(scope);
  }

  /** The policy scope of a gateway (what its VM sees of the soft authenticator): per-gateway unless its policy says shared. */
  policyScope(fingerprint: string): 'per-gateway' | 'shared' {
    return this.policies.find((p) => p.fingerprint === fingerprint)?.scope ?? 'per-gateway';
  }

  /** A gateway's fingerprint from its name (as in gateways.json or the trust file) or any spelling of its fingerprint. */
  resolve(nameOrFingerprint: string): string {
    try {
      return parseFingerprint(nameOrFingerprint);
    } catch {
      // Not a fingerprint: a name.
    }
    const matches = new Set<string>([
      ...this.policies.filter((p) => p.name === nameOrFingerprint).map((p) => p.fingerprint),
      ...this.peers.filter((p) => p.name === nameOrFingerprint).map((p) => p.fingerprint),
    ]);
    if (matches.size === 1) return [...matches][0]!;
    const shown = displayText(nameOrFingerprint, 64);
    if (matches.size === 0) {
      throw new GatewayLookupError(`no trusted gateway is named "${shown}" (see keytunnel trust list; a fingerprint works too)`);
    }
    throw new GatewayLookupError(`several gateways are named "${shown}": ${[...matches].join(', ')}; give the fingerprint`);
  }
}
