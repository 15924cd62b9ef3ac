/**
 * The `install-service --agent-user` handler: the user's session (home, uid, Windows user), whether the soft
 * store's passphrase is already in the keychain, then plan.ts's plan, applied or printed. Loaded only when
 * --agent-user is given.
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { profileStorePath, DEFAULT_PROFILE } from '../../agent/authenticators/soft/store-file.ts';
import { storeAccount, systemKeychain } from '../../agent/keychain.ts';
import { defaultSources } from '../commands/install-service.ts';
import { RelaySetupError } from '../options.ts';
import { resolveStateDir } from '../state-dir.ts';
import {
  AgentServiceError,
  applyAgentServicePlan,
  planAgentService,
  systemAgentServiceIo,
  type AgentFlags,
  type AgentServiceUser,
  type PlanOptions,
  type ServicePlatform,
} from './plan.ts';

export function currentUser(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): AgentServiceUser {
  if (platform !== 'linux' && platform !== 'darwin' && platform !== 'win32') {
    throw new AgentServiceError(`--agent-user knows Linux, macOS and Windows (this is ${platform})`);
  }
  const home = homedir();
  const user: AgentServiceUser = { platform: platform as ServicePlatform, home, uid: process.getuid?.() };
  if (platform !== 'win32') return user;
  const name = env['USERNAME'] ?? userInfo().username;
  const domain = env['USERDOMAIN'];
  return { ...user, windowsUser: domain ? `${domain}\\${name}` : name, localAppData: env['LOCALAPPDATA'] ?? join(home, 'AppData', 'Local') };
}

export function flagsFrom(argv: Readonly<Record<string, unknown>>): AgentFlags {
  const str = (k: string): string | undefined => (typeof argv[k] === 'string' ? (argv[k] as string) : undefined);
  const trust = argv['trust'];
  return {
    soft: argv['soft'] === true,
    hardware: argv['hardware'] === true,
    listen: str('listen'),
    connect: str('connect'),
    trust: trust === undefined ? [] : (Array.isArray(trust) ? trust : [trust]).map(String),
    name: str('name'),
    profile: str('profile'),
    stateDir: str('stateDir'),
    notify: argv['notify'] === true,
  };
}

async function softPassphrase(flags: AgentFlags): Promise<PlanOptions['softPassphrase']> {
  if (!flags.soft) return undefined;
  const store = profileStorePath(resolveStateDir(flags.stateDir), flags.profile ?? DEFAULT_PROFILE);
  try {
    return (await systemKeychain({ timeoutMs: 15_000 }).get(storeAccount(store))) === undefined ? 'missing' : 'remembered';
  } catch (err) {
    return { unknown: (err as Error).message };
  }
}

/** Exit status: 0 done, 1 a command failed, 2 a usage or setup problem. */
export async function runAgentUserInstall(argv: Readonly<Record<string, unknown>>, out: (line: string) => void): Promise<number> {
  try {
    if (argv['gateway'] === true || argv['softUser'] === true) {
      throw new AgentServiceError('--agent-user goes alone: --gateway and --soft-user install system services (run them separately)');
    }
    const remove = argv['remove'] === true;
    const user = currentUser();
    const flags = remove ? undefined : flagsFrom(argv);
    const options: PlanOptions = { remove, softPassphrase: flags ? await softPassphrase(flags) : undefined };
    const plan = await planAgentService(flags, defaultSources(), user, options);
    const failed = await applyAgentServicePlan(plan, systemAgentServiceIo(out), argv['dryRun'] === true);
    return failed.length > 0 ? 1 : 0;
  } catch (err) {
    const known = err instanceof AgentServiceError || err instanceof RelaySetupError || (err as Error).name === 'StoreError';
    console.error(`keytunnel install-service: ${(err as Error).message}`);
    return known ? 2 : 1;
  }
}
