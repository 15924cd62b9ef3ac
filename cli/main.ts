/**
 * The `keytunnel` command line. Each subcommand lives in `cli/commands/<name>.ts` and exports a yargs
 * CommandModule; this file only assembles them.
 */
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { versionLine } from './build-info.ts';

type Loader = () => Promise<{ default: CommandModule }>;

/**
 * Subcommands, in the order `--help` lists them. Each is loaded only when it runs (all of them only for the
 * top-level help or an unknown command), so a long-running `gateway` does not carry the agent's soft
 * authenticator, node-hid or the demo's relying party in memory.
 */
const COMMANDS: Record<string, Loader> = {
  devices: () => import('./commands/devices.ts'),
  id: () => import('./commands/id.ts'),
  trust: () => import('./commands/trust.ts'),
  passkeys: () => import('./commands/passkeys.ts'),
  audit: () => import('./commands/audit.ts'),
  agent: () => import('./commands/agent.ts'),
  gateway: () => import('./commands/gateway.ts'),
  soft: () => import('./commands/soft.ts'),
  'forget-passphrase': () => import('./commands/forget-passphrase.ts'),
  demo: () => import('./commands/demo.ts'),
  doctor: () => import('./commands/doctor.ts'),
  'install-service': () => import('./commands/install-service.ts'),
  'install-rdp-plugin': () => import('./commands/install-rdp-plugin.ts'),
};

async function loadCommands(argv: readonly string[]): Promise<CommandModule[]> {
  const first = argv.find((a) => !a.startsWith('-'));
  const wanted = first !== undefined && Object.hasOwn(COMMANDS, first) ? [COMMANDS[first]!] : Object.values(COMMANDS);
  return (await Promise.all(wanted.map((load) => load()))).map((m) => m.default);
}

export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('keytunnel')
    .usage(
      '$0 <command> [options]\n\n' +
        'Use FIDO2 security keys and passkeys inside remote desktops and VMs: the agent exports the\n' +
        "authenticators on your own machine over a mutually authenticated TLS tunnel; the gateway shows each\n" +
        'one to the VM as a virtual FIDO HID device.',
    )
    .version(argv.includes('--version') ? versionLine() : 'see --version') // run from sources it asks git: only when asked
    .strict()
    .demandCommand(1, 'Name a command (see --help).')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .help()
    .fail((message, error) => {
      // Expected failures (bad flags, wrong passphrase, unreachable peer) are one clear line, not a stack trace;
      // KEYTUNNEL_LOG_LEVEL=debug shows the stack.
      if (error) {
        console.error(`keytunnel: ${error.message}`);
        if (process.env.KEYTUNNEL_LOG_LEVEL === 'debug' && error.stack) console.error(error.stack);
        process.exit(1);
      }
      console.error(`keytunnel: ${message}\nRun 'keytunnel --help' (or 'keytunnel <command> --help') for usage.`);
      process.exit(2);
    });
  for (const command of await loadCommands(argv)) cli = cli.command(command);
  await cli.parseAsync();
}

// When imported by bin/keytunnel.js (or the executable's cli/sea/entry.ts) `main` is called explicitly; hideBin is
// kept for direct `tsx cli/main.ts` runs (checked on argv[1] first: inside the executable import.meta.url writes files).
if (process.argv[1]?.endsWith('.ts') && import.meta.url === `file://${process.argv[1]}`) void main(hideBin(process.argv));
