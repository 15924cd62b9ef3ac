/**
 * Durable atomic replacement of a file, per platform: write a temp file, fsync it, rename it over the target,
 * then makeRenameDurable on the directory. Used by the soft authenticator's store and the agent's policy file.
 */
import { open } from 'node:fs/promises';

export interface Durability {
  readonly platform: NodeJS.Platform;
  readonly syncDir: (dir: string) => Promise<void>;
}

/** fsync a directory so a rename in it is durable (POSIX leaves it to the caller). */
export async function syncDirectory(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

const NATIVE: Durability = { platform: process.platform, syncDir: syncDirectory };

/**
 * Makes a completed rename in `dir` survive power loss, the way the platform requires.
 *
 * POSIX: rename(2) changes the directory, and only an fsync of the directory makes that change durable (POSIX
 * leaves it to the caller), so the directory is fsync'd.
 *
 * Windows (win32): a directory cannot be opened for flushing — FlushFileBuffers needs a handle opened for
 * writing, and Node's fsync of a directory handle fails with EPERM — so a directory fsync would make every save
 * fail (the soft authenticator could not even create its store: issue 17). There the rename (libuv's
 * MoveFileExW with MOVEFILE_REPLACE_EXISTING) is a metadata operation that NTFS records in its journal, which
 * is what makes it atomic and recoverable; npm's write-file-atomic skips the directory sync on Windows for the
 * same reason. The data itself was flushed (FlushFileBuffers, the fsync of the temp file) before the rename, so
 * the name never points at unflushed bytes. What Windows gives up: Node has no write-through rename
 * (MOVEFILE_WRITE_THROUGH), so a power cut soon after a save, before NTFS lazily flushes its log, can
 * bring back the previous complete image; never a torn one.
 */
export async function makeRenameDurable(dir: string, durability: Durability = NATIVE): Promise<void> {
  if (durability.platform === 'win32') return;
  await durability.syncDir(dir);
}
