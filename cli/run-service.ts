/**
 * The life of a long-running command (`soft`, `agent`, `gateway`): make the logger (exit 2 on a bad
 * --log-level), start the service (exit 1 with one clear line when that fails), say where it runs, wait for
 * a stop signal (stopSignals: SIGINT/SIGTERM; on Windows also Ctrl+Break and console close), stop it cleanly
 * (virtual devices destroyed, files flushed) and exit 0.
 */
import { createLogger, type Logger } from './log.ts';

/** What a long-running command runs: released by close(), like everything else that holds resources. */
export interface Service {
  close(): Promise<void>;
}

export async function runService<S extends Service>(
  command: string,
  logLevel: string | undefined,
  start: (log: Logger) => Promise<S>,
  started: (service: S, log: Logger) => void,
): Promise<void> {
  let log: Logger;
  try {
    log = createLogger({ level: logLevel, name: command });
  } catch (err) {
    process.stderr.write(`keytunnel ${command}: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  let service: S;
  try {
    service = await start(log);
  } catch (err) {
    log.error(`keytunnel ${command}: ${(err as Error).message}`);
    log.flush?.();
    process.exitCode = 1;
    return;
  }
  // Listen for the stop signals before announcing the service: whoever waits for that line may stop it at once.
  const stopSignal = waitForStopSignal(log);
  started(service, log);
  const signal = await stopSignal;
  log.info({ signal }, 'stopping');
  await service.close();
  log.info('stopped');
  log.flush?.();
  process.exitCode = 0;
}

/**
 * The signals that ask a service to stop cleanly.
 *
 * POSIX: SIGINT (Ctrl+C) and SIGTERM (kill, systemd stop).
 * Windows has no real signals; Node emulates a few (see Node's "Signal events"): SIGINT on Ctrl+C, SIGBREAK on
 * Ctrl+Break, SIGHUP when the console window is closed (Windows then ends the process about 10 s later, time
 * enough for a clean stop). SIGTERM is never delivered there: `process.kill(pid, 'SIGTERM')` and Task Manager
 * end the process at once, as SIGKILL would; a Windows service wrapper should send Ctrl+C or Ctrl+Break.
 */
export function stopSignals(platform: NodeJS.Platform = process.platform): NodeJS.Signals[] {
  return platform === 'win32' ? ['SIGINT', 'SIGBREAK', 'SIGHUP', 'SIGTERM'] : ['SIGINT', 'SIGTERM'];
}

/** Resolves on the first stop signal (stopSignals); a second one while stopping exits at once. */
export function waitForStopSignal(log: Logger, platform: NodeJS.Platform = process.platform): Promise<NodeJS.Signals> {
  const signals = stopSignals(platform);
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      for (const s of signals) process.off(s, onSignal);
      const force = (again: NodeJS.Signals): void => {
        log.warn({ signal: again }, 'second signal: exiting without a clean shutdown');
        process.exit(130);
      };
      for (const s of signals) process.once(s, force);
      resolve(signal);
    };
    for (const s of signals) process.on(s, onSignal);
  });
}
