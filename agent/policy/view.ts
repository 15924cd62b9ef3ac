/**
 * Wires the policy layer into the agent: loads `gateways.json`, opens the audit log, and answers the agent's
 * per-gateway `AuthenticatorView` seam with `withPolicy` wrappers that share one PolicyState (so sequences
 * cannot be continued across gateways).
 */
import type { AuthenticatorView, GatewayIdentity } from '../session.ts';
import type { Presence } from '../authenticators/soft/ports.ts';
import { AuditLog } from './audit.ts';
import { PolicyConfig, type GatewayPolicy } from './config.ts';
import { PolicyState, withPolicy } from './policy-authenticator.ts';

export interface AgentPolicy {
  readonly config: PolicyConfig;
  readonly audit: AuditLog;
  readonly view: AuthenticatorView;
  /** The policy a gateway gets: its entry in gateways.json, else the default under the name it was trusted as. */
  policyFor(gateway: GatewayIdentity): GatewayPolicy;
  close(): void;
}

export async function loadAgentPolicy(
  stateDir: string,
  presence: Presence,
  loaded?: PolicyConfig,
): Promise<AgentPolicy> {
  const config = loaded ?? (await PolicyConfig.load(stateDir));
  const audit = AuditLog.forStateDir(stateDir);
  const state = new PolicyState();
  const policyFor = (gateway: GatewayIdentity): GatewayPolicy => {
    const policy = config.resolve(gateway.fingerprint);
    return config.get(gateway.fingerprint) || !gateway.name ? policy : { ...policy, name: gateway.name };
  };
  return {
    config,
    audit,
    policyFor,
    view: (gateway) => {
      const policy = policyFor(gateway);
      return (auth) => withPolicy(auth, policy, { audit, presence, state });
    },
    close: () => audit.close(),
  };
}
