/** The `--state-dir` option every command that keeps state declares, so it means the same thing everywhere. */
import { defaultStateDir } from '../tunnel/identity.ts';

export { defaultStateDir };

export const stateDirOption = {
  'state-dir': {
    type: 'string',
    describe: `Where identity, trust, policy, audit log and credentials live (default: ${defaultStateDir()})`,
  },
} as const;

export function resolveStateDir(flag: string | undefined): string {
  return flag && flag !== '' ? flag : defaultStateDir();
}
