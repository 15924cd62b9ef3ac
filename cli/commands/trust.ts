/**
 * `keytunnel trust add|list|unblock`: pin a peer's fingerprint (`trusted-peers` in the state dir, both sides)
 * and, on the agent, set the per-gateway policy (`gateways.json`): display name, RP allow-list, credential
 * scope, approval; and lift a gateway's PIN block (agent/policy/pin-guard.ts).
 *
 *   keytunnel trust add 3f:a1:…:9c --name customer-a --allow-rp login.microsoft.com --allow-rp '*.contoso.com'
 *   keytunnel trust unblock customer-b
 */
import type { Argv, CommandModule } from 'yargs';
import { PolicyConfig, type Approve, type GatewayPolicy, type Scope } from '../../agent/policy/config.ts';
import { FilePinBlockStore } from '../../agent/policy/pin-guard.ts';
import { displayText as terminalSafe } from '../../agent/display-text.ts';
import { addToTrustFile, readTrustFile } from '../../tunnel/trust.ts';
import { parseFingerprint } from '../../tunnel/fingerprint.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';

interface AddArgs {
  fingerprint: string;
  name?: string;
  'allow-rp'?: string[];
  scope?: Scope;
  approve?: Approve;
  'state-dir'?: string;
}

export async function trustAdd(args: AddArgs, out: (line: string) => void): Promise<void> {
  const stateDir = resolveStateDir(args['state-dir']);
  const fingerprint = parseFingerprint(args.fingerprint);
  const policy = await PolicyConfig.load(stateDir);
  const hasPolicyFlags = args['allow-rp'] !== undefined || args.scope !== undefined || args.approve !== undefined;
  // Validate the policy before touching either file, so a typo changes nothing.
  let entry: GatewayPolicy | undefined;
  if (hasPolicyFlags || policy.get(fingerprint)) {
    entry = policy.upsert(fingerprint, {
      ...(args.name !== undefined ? { name: args.name } : {}),
      ...(args['allow-rp'] !== undefined ? { allowRps: args['allow-rp'] } : {}),
      ...(args.scope !== undefined ? { scope: args.scope } : {}),
      ...(args.approve !== undefined ? { approve: args.approve } : {}),
    });
  }
  await addToTrustFile(stateDir, fingerprint, args.name);
  if (entry) await policy.save();
  out(`trusted ${fingerprint}${args.name ? ` (${args.name})` : ''}`);
  if (entry) {
    out(`  policy: allowRps ${entry.allowRps.join(', ')}; scope ${entry.scope}; approve ${entry.approve}`);
  }
}

export async function trustList(stateDir: string, out: (line: string) => void): Promise<void> {
  const peers = await readTrustFile(stateDir);
  const policy = await PolicyConfig.load(stateDir);
  const blocks = await new FilePinBlockStore(stateDir).list();
  const fingerprints = [...new Set([...peers.map((p) => p.fingerprint), ...policy.fingerprints(), ...blocks.map((b) => b.fingerprint)])];
  if (fingerprints.length === 0) {
    out('no trusted peers (add one with: keytunnel trust add <fingerprint> --name <name>)');
    return;
  }
  for (const fp of fingerprints) {
    const p = policy.get(fp);
    const block = blocks.find((b) => b.fingerprint === fp);
    const name = p?.name ?? peers.find((e) => e.fingerprint === fp)?.name ?? (block ? terminalSafe(block.name, 40) : '-');
    out(
      `${fp}  ${name}${p ? `  allowRps=${p.allowRps.join(',')} scope=${p.scope} approve=${p.approve}` : ''}` +
        (block ? `  PIN-BLOCKED since ${terminalSafe(block.blockedAt, 32)} (keytunnel trust unblock ${fp})` : ''),
    );
  }
}

interface UnblockArgs {
  gateway: string;
  'state-dir'?: string;
}

/**
 * Lift a gateway's PIN block: delete its file in `<state-dir>/pin-blocks/`; the running agent notices on the
 * gateway's next PIN attempt and forgets its wrong-PIN count. NAME is looked up in what a person set (the trust
 * file and gateways.json), never in a name a gateway announced.
 */
export async function trustUnblock(args: UnblockArgs, out: (line: string) => void): Promise<void> {
  const stateDir = resolveStateDir(args['state-dir']);
  const fingerprint = await resolveGateway(stateDir, args.gateway);
  const store = new FilePinBlockStore(stateDir);
  const label = await labelOf(stateDir, fingerprint);
  if (await store.remove(fingerprint)) {
    out(`unblocked ${fingerprint}${label}: its PIN attempts reach the authenticators again`);
  } else {
    out(`${fingerprint}${label} is not blocked (a running agent blocks a gateway after 2 wrong PINs in a row)`);
  }
}

async function resolveGateway(stateDir: string, nameOrFp: string): Promise<string> {
  try {
    return parseFingerprint(nameOrFp);
  } catch {
    // Not a fingerprint: a name.
  }
  const peers = await readTrustFile(stateDir);
  const policy = await PolicyConfig.load(stateDir);
  const matches = new Set<string>([
    ...peers.filter((p) => p.name === nameOrFp).map((p) => p.fingerprint),
    ...policy.list().filter((p) => p.name === nameOrFp).map((p) => p.fingerprint),
  ]);
  if (matches.size === 1) return [...matches][0]!;
  const shown = terminalSafe(nameOrFp, 64);
  if (matches.size === 0) {
    throw new Error(`no trusted gateway is named "${shown}" (see keytunnel trust list; a fingerprint works too)`);
  }
  throw new Error(`several gateways are named "${shown}": ${[...matches].join(', ')}; give the fingerprint`);
}

async function labelOf(stateDir: string, fingerprint: string): Promise<string> {
  const name =
    (await PolicyConfig.load(stateDir)).get(fingerprint)?.name ??
    (await readTrustFile(stateDir)).find((p) => p.fingerprint === fingerprint)?.name;
  return name ? ` (${terminalSafe(name, 40)})` : '';
}

const command: CommandModule = {
  command: 'trust <action>',
  describe: 'Pin peers (agents or gateways) by fingerprint, set per-gateway policy, lift a PIN block',
  builder: (yargs: Argv) =>
    yargs
      .command({
        command: 'add <fingerprint>',
        describe: 'Trust a peer; on the agent, --allow-rp/--scope/--approve set that gateway\'s policy',
        builder: (y: Argv) =>
          y
            .positional('fingerprint', { type: 'string', demandOption: true, describe: 'the peer\'s `keytunnel id`' })
            .options({
              name: { type: 'string', describe: 'Display name, shown in prompts and the audit log (e.g. customer-a)' },
              'allow-rp': {
                type: 'string',
                array: true,
                describe: 'RP ID this gateway may use: exact, *.suffix, * (any) or a U2F AppID URL; repeatable',
              },
              scope: {
                choices: ['per-gateway', 'shared'] as const,
                describe: 'per-gateway: soft credentials made through this gateway are visible only to it (default)',
              },
              approve: {
                choices: ['touch', 'agent'] as const,
                describe: 'touch: a hardware key\'s touch is enough (default); agent: also confirm on the agent',
              },
              ...stateDirOption,
            }),
        handler: async (args) => trustAdd(args as unknown as AddArgs, (l) => console.log(l)),
      })
      .command({
        command: 'list',
        describe: 'List trusted peers and their policy',
        builder: (y: Argv) => y.options(stateDirOption),
        handler: async (args) => trustList(resolveStateDir(args['state-dir'] as string | undefined), (l) => console.log(l)),
      })
      .command({
        command: 'unblock <gateway>',
        describe:
          'On the agent: let a gateway try PINs again after the agent blocked it for 2 wrong PINs in a row ' +
          '(an agent restart also unblocks)',
        builder: (y: Argv) =>
          y
            .positional('gateway', { type: 'string', demandOption: true, describe: 'the gateway\'s name or fingerprint' })
            .options(stateDirOption),
        handler: async (args) => trustUnblock(args as unknown as UnblockArgs, (l) => console.log(l)),
      })
      .demandCommand(1, 'Name an action: add, list or unblock'),
  handler: () => {},
};

export default command;
