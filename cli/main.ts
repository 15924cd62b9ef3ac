/**
 * The `keytunnel` command line. Each subcommand lives in `cli/commands/<name>.ts` and exports a yargs
 * CommandModule; this file only assembles them.
 */
import { readFileSync } from 'node:fs';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import agentCommand from './commands/agent.ts';
import auditCommand from './commands/audit.ts';
import demoCommand from './commands/demo.ts';
import devicesCommand from './commands/devices.ts';
import doctorCommand from './commands/doctor.ts';
import gatewayCommand from './commands/gateway.ts';
import idCommand from './commands/id.ts';
import installServiceCommand from './commands/install-service.ts';
import softCommand from './commands/soft.ts';
import trustCommand from './commands/trust.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

// Subcommands, in the order `--help` lists them.
const commands: CommandModule[] = [devicesCommand, idCommand, trustCommand, auditCommand, agentCommand, gatewayCommand, softCommand, demoCommand, doctorCommand, installServiceCommand];

export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('keytunnel')
    .usage(
      '$0 <command> [options]\n\n' +
        'Use FIDO2 security keys and passkeys inside remote desktops and VMs: the agent exports the\n' +
        "authenticators on your own machine over a mutually authenticated TLS tunnel; the gateway shows each\n" +
        'one to the VM as a virtual FIDO HID device.',
    )
    .version(pkg.version)
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
  for (const command of commands) cli = cli.command(command);
  await cli.parseAsync();
}

// When imported by bin/keytunnel.js `main` is called explicitly; hideBin is kept for direct `tsx cli/main.ts` runs.
if (import.meta.url === `file://${process.argv[1]}`) await main(hideBin(process.argv));
