/**
 * An exclusive, crash-tolerant lock on one state file, so two processes never write the same profile (the
 * second writer would silently roll the first one's signature counters back).
 *
 * The lock is a file `<state>.lock` holding the owner's pid, created atomically with link(2) (the content is
 * complete before the name appears). A lock whose owner is gone (kill -9, power loss) is stale and taken over.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { KeytunnelError } from '../../../protocol/errors.ts';

/** Paths locked by this process (a second open in the same process must fail too). */
const heldHere = new Set<string>();

export class StoreLockedError extends KeytunnelError {
  override readonly name = 'StoreLockedError';
  readonly code = 'STORE_LOCKED';
  constructor(
    readonly lockPath: string,
    readonly ownerPid: number | null,
  ) {
    super(
      ownerPid === null
        ? `store is already open in this process (${lockPath})`
        : `store is in use by process ${ownerPid} (lock ${lockPath})`,
    );
  }
}

/** Whether a process exists (EPERM means it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class StoreLock {
  private released = false;
  private constructor(readonly lockPath: string) {}

  static async acquire(lockPath: string): Promise<StoreLock> {
    if (heldHere.has(lockPath)) throw new StoreLockedError(lockPath, null);
    heldHere.add(lockPath);
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const tmp = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`;
        await writeFile(tmp, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        try {
          await link(tmp, lockPath);
          return new StoreLock(lockPath);
        } catch (err) {
          if (errno(err) !== 'EEXIST') throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
        const owner = await readOwner(lockPath);
        if (owner !== null && owner !== process.pid && processAlive(owner)) throw new StoreLockedError(lockPath, owner);
        // Stale (owner gone, or a pid recycled to us after a crash): remove it and try again.
        await unlink(lockPath).catch((err: unknown) => {
          if (errno(err) !== 'ENOENT') throw err;
        });
      }
      throw new StoreLockedError(lockPath, await readOwner(lockPath));
    } catch (err) {
      heldHere.delete(lockPath);
      throw err;
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.lockPath);
    // Only remove the lock if it is still ours (a stale-lock takeover elsewhere must not be undone).
    if ((await readOwner(this.lockPath)) === process.pid) await unlink(this.lockPath).catch(() => undefined);
  }
}

async function readOwner(lockPath: string): Promise<number | null> {
  try {
    const text = await readFile(lockPath, 'utf8');
    const pid = Number.parseInt(text.trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
