/**
 * `keytunnel forget-passphrase [--state-dir DIR] [--profile NAME]`: remove the soft authenticator's store
 * passphrase from the OS keychain (remembered by `--remember-passphrase` or the terminal's prompt choice). The
 * next start asks for it again. The store itself is not touched.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DEFAULT_PROFILE, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { KeychainError, storeAccount, systemKeychain, type Keychain } from '../../agent/keychain.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';

/** Removes the entry of the store at `storePath`; returns the line to print. */
export async function forgetPassphrase(keychain: Keychain, storePath: string): Promise<string> {
  const removed = await keychain.delete(storeAccount(storePath));
  return removed
    ? `forgot the passphrase of ${storePath} (removed from ${keychain.name}); the next start asks for it`
    : `nothing to forget: ${keychain.name} has no passphrase for ${storePath}`;
}

export const forgetPassphraseCommand: CommandModule = {
  command: 'forget-passphrase',
  describe: "Remove the soft authenticator's store passphrase from the OS keychain",
  builder: (yargs: Argv) =>
    yargs.options(stateDirOption).option('profile', {
      type: 'string',
      default: DEFAULT_PROFILE,
      describe: 'Which soft authenticator (its state is <state-dir>/soft-<profile>.kts)',
    }),
  handler: async (argv: ArgumentsCamelCase) => {
    try {
      const storePath = profileStorePath(resolveStateDir(argv['stateDir'] as string | undefined), String(argv['profile'] ?? DEFAULT_PROFILE));
      console.log(await forgetPassphrase(systemKeychain(), storePath));
    } catch (err) {
      console.error(`keytunnel forget-passphrase: ${(err as Error).message}`);
      process.exitCode = err instanceof KeychainError ? 1 : 2;
    }
  },
};

export default forgetPassphraseCommand;
