/**
 * `keytunnel doctor [--state-dir DIR] [--connect HOST:PORT] [--strict]`: check what users get wrong — uhid, the
 * udev rule, the virtual keys' hidraw permissions, the USB/IP client, identity and trust, whether the peer is
 * reachable and trusted, clocks, Windows elevation — one line per finding (`ok` / `warn` / `FAIL` / `n/a`) with the
 * fix. Exit status 0 when nothing FAILed (with --strict: nothing warned either), else 1.
 *
 * The checks live in cli/doctor/ (one module each, I/O injected); this file only wires them to the machine.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { exitCodeFor, formatFinding } from '../doctor/finding.ts';
import { systemPorts } from '../doctor/ports.ts';
import { runDoctor } from '../doctor/run.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';
import { parseEndpoint } from '../options.ts';

export const doctorCommand: CommandModule = {
  command: 'doctor',
  describe: 'Check this machine for what keeps keytunnel from working, and say how to fix each',
  builder: (yargs: Argv) =>
    yargs
      .options(stateDirOption)
      .option('connect', {
        type: 'string',
        describe: "The peer's HOST:PORT: check it is reachable and presents a trusted certificate",
      })
      .option('strict', { type: 'boolean', default: false, describe: 'Exit 1 on warnings too' }),
  handler: async (argv: ArgumentsCamelCase) => {
    try {
      const connectText = argv['connect'] as string | undefined;
      const findings = await runDoctor(
        {
          stateDir: resolveStateDir(argv['stateDir'] as string | undefined),
          connect: connectText === undefined ? undefined : parseEndpoint(connectText, '--connect', false),
        },
        systemPorts(),
      );
      for (const f of findings) console.log(formatFinding(f));
      process.exitCode = exitCodeFor(findings, argv['strict'] === true);
    } catch (err) {
      console.error(`keytunnel doctor: ${(err as Error).message}`);
      process.exitCode = 2;
    }
  },
};

export default doctorCommand;
