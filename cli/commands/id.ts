/**
 * `keytunnel id [--state-dir DIR]`: print this installation's tunnel identity fingerprint (SHA-256 of its
 * certificate) ALONE on the first stdout line, so scripts can do `FP=$(keytunnel id)`; where it lives and how the
 * other side trusts it go to stderr. The identity (P-256 key + self-signed certificate) is created on first use.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadOrCreateIdentity, type LoadedIdentity } from '../../tunnel/identity.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';

export interface IdIo {
  readonly load: (stateDir: string) => Promise<LoadedIdentity>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** The command's behaviour, with its I/O injected. Returns the exit code. */
export async function runId(args: { stateDir?: string }, io: IdIo): Promise<number> {
  const stateDir = resolveStateDir(args.stateDir);
  let loaded: LoadedIdentity;
  try {
    loaded = await io.load(stateDir);
  } catch (err) {
    io.stderr(`keytunnel id: cannot load or create the identity in ${stateDir}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const { identity, created } = loaded;
  io.stdout(`${identity.fingerprint}\n`);
  io.stderr(
    `${created ? 'created a new identity' : 'identity'}: ${identity.path}\n` +
      `on the other side, trust it with: --trust ${identity.fingerprint}\n`,
  );
  return 0;
}

export const idCommand: CommandModule = {
  command: 'id',
  describe: "Print this installation's tunnel fingerprint (creating the identity on first use)",
  builder: (yargs: Argv) => yargs.options(stateDirOption),
  handler: async (argv: ArgumentsCamelCase) => {
    const stateDir = typeof argv['stateDir'] === 'string' ? argv['stateDir'] : undefined;
    const code = await runId(
      { stateDir },
      {
        load: (dir) => loadOrCreateIdentity(dir),
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      },
    );
    if (code !== 0) process.exitCode = code;
  },
};

export default idCommand;
