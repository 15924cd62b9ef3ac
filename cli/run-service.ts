/**
 * The life of a long-running command (`soft`, `agent`, `gateway`): make the logger (exit 2 on a bad
 * --log-level), start the service (exit 1 with one clear line when that fails), say where it runs, wait for
 * SIGINT/SIGTERM, stop it cleanly (virtual devices destroyed, files flushed) and exit 0.
 */
import { createLogger, type Logger } from './log.ts';

export interface Stoppable {
  stop(): Promise<void>;
}

export async function runService<S extends Stoppable>(
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
  started(service, log);
  const signal = await waitForStopSignal(log);
  log.info({ signal }, 'stopping');
  await service.stop();
  log.info('stopped');
  log.flush?.();
  process.exitCode = 0;
}

/** Resolves on the first SIGINT or SIGTERM; a second one while stopping exits at once. */
export function waitForStopSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = (again: NodeJS.Signals): void => {
        log.warn({ signal: again }, 'second signal: exiting without a clean shutdown');
        process.exit(130);
      };
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
