/**
 * `keytunnel trust add|list`: pin a peer's fingerprint (`trusted-peers` in the state dir, both sides) and, on the
 * agent, set the per-gateway policy (`gateways.json`): display name, RP allow-list, credential scope, approval.
 *
 *   keytunnel trust add 3f:a1:…:9c --name customer-a --allow-rp login.microsoft.com --allow-rp '*.contoso.com'
 */
import type { Argv, CommandModule } from 'yargs';
import { PolicyConfig, type Approve, type GatewayPolicy, type Scope } from '../../agent/policy/config.ts';
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
  const fingerprints = [...new Set([...peers.map((p) => p.fingerprint), ...policy.fingerprints()])];
  if (fingerprints.length === 0) {
    out('no trusted peers (add one with: keytunnel trust add <fingerprint> --name <name>)');
    return;
  }
  for (const fp of fingerprints) {
    const p = policy.get(fp);
    const name = p?.name ?? peers.find((e) => e.fingerprint === fp)?.name ?? '-';
    out(`${fp}  ${name}${p ? `  allowRps=${p.allowRps.join(',')} scope=${p.scope} approve=${p.approve}` : ''}`);
  }
}

const command: CommandModule = {
  command: 'trust <action>',
  describe: 'Pin peers (agents or gateways) by fingerprint and set per-gateway policy',
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
      .demandCommand(1, 'Name an action: add or list'),
  handler: () => {},
};

export default command;
