/**
 * Wires the policy layer into the agent: loads `gateways.json`, opens the audit log, and answers the agent's
 * per-gateway `AuthenticatorView` seam with `withPolicy` wrappers that share one PolicyState (so sequences
 * cannot be continued across gateways) and one PinGuard (so wrong PINs are counted per gateway across
 * reconnects, for as long as the agent runs).
 */
import type { AuthenticatorView, GatewayIdentity } from '../session.ts';
import type { Presence } from '../presence/port.ts';
import { AuditLog } from './audit.ts';
import { PolicyConfig, type GatewayPolicy } from './config.ts';
import type { Logger } from '../../protocol/logger.ts';
import { PinGuard } from './pin-guard.ts';
import { PolicyState, withPolicy } from './policy-authenticator.ts';

export interface AgentPolicy {
  readonly config: PolicyConfig;
  readonly audit: AuditLog;
  readonly view: AuthenticatorView;
  /** setPIN/changePIN confirmation and the per-gateway wrong-PIN block, shared by every view. */
  readonly pinGuard: PinGuard;
  /** The policy a gateway gets: its entry in gateways.json, else the default under the name it was trusted as. */
  policyFor(gateway: GatewayIdentity): GatewayPolicy;
  /** Writes what the audit log still has queued. */
  close(): Promise<void>;
}

export async function loadAgentPolicy(
  stateDir: string,
  presence: Presence,
  loaded?: PolicyConfig,
  log?: Logger,
): Promise<AgentPolicy> {
  const config = loaded ?? (await PolicyConfig.load(stateDir));
  const audit = AuditLog.forStateDir(stateDir);
  const state = new PolicyState();
  // Starting the agent clears the PIN blocks an earlier run recorded (issue 11: "or an agent restart").
  const pinGuard = await PinGuard.open(stateDir, presence, log);
  const policyFor = (gateway: GatewayIdentity): GatewayPolicy => {
    const policy = config.resolve(gateway.fingerprint);
    return config.get(gateway.fingerprint) || !gateway.name ? policy : { ...policy, name: gateway.name };
  };
  return {
    config,
    audit,
    pinGuard,
    policyFor,
    view: (gateway) => {
      const policy = policyFor(gateway);
      return (auth) => withPolicy(auth, policy, { audit, presence, state, pinGuard });
    },
    close: () => audit.close(),
  };
}
