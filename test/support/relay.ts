/**
 * An agent and its gateways in this process, as `keytunnel agent` and `keytunnel gateway` run them
 * (startAgentService / startGatewayService): the agent listens on 127.0.0.1 and exports its soft authenticator;
 * each gateway dials it, trusts it, and shows its authenticators as loopback devices. Every option can be
 * overridden; `startRelay` also waits until every gateway shows its devices.
 */
import { startAgentService, type AgentService, type AgentServiceIo, type AgentServiceOptions } from '../../cli/commands/agent.ts';
import { startGatewayService, type GatewayService, type GatewayServiceIo, type GatewayServiceOptions } from '../../cli/commands/gateway.ts';
import { waitFor } from './wait-for.ts';


export type TestAgentOptions = Partial<AgentServiceOptions> & { readonly stateDir: string };
export type TestGatewayOptions = Partial<GatewayServiceOptions> & { readonly stateDir: string };

/** An agent listening on 127.0.0.1 (any port) with its soft authenticator, approving everything, trusting nobody. */
export function startTestAgent(options: TestAgentOptions, io: AgentServiceIo): Promise<AgentService> {
  return startAgentService(
    { soft: true, hardware: false, listen: { host: '127.0.0.1', port: 0 }, trust: [], profile: 'default', approve: 'always', ...options },
    io,
  );
}

/** A gateway with loopback devices that dials `agent` and trusts it. */
export function startTestGateway(agent: AgentService, options: TestGatewayOptions, io: GatewayServiceIo): Promise<GatewayService> {
  return startGatewayService(
    { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, connect: agent.address, trust: [agent.fingerprint], ...options },
    io,
  );
}

export interface Relay {
  readonly agent: AgentService;
  readonly gateways: GatewayService[];
  /** Closes the gateways, then the agent. */
  close(): Promise<void>;
}

/** The agent, then one gateway per entry of `gateways`; resolves once each gateway shows `devices` devices. */
export async function startRelay(options: {
  readonly agent: TestAgentOptions;
  readonly agentIo: AgentServiceIo;
  readonly gateways: readonly TestGatewayOptions[];
  readonly gatewayIo: GatewayServiceIo;
  /** Devices each gateway must show (default 1). */
  readonly devices?: number;
}): Promise<Relay> {
  const agent = await startTestAgent(options.agent, options.agentIo);
  const gateways: GatewayService[] = [];
  const close = async (): Promise<void> => {
    for (const g of gateways.splice(0).reverse()) await g.close();
    await agent.close();
  };
  try {
    for (const g of options.gateways) gateways.push(await startTestGateway(agent, g, options.gatewayIo));
    const devices = options.devices ?? 1;
    for (const [i, g] of gateways.entries()) await waitFor(`gateway ${i}'s devices`, () => g.core.list().length >= devices);
  } catch (err) {
    await close();
    throw err;
  }
  return { agent, gateways, close };
}
