/** Whether something is at `path` (any kind of file; false when it cannot be reached either). */
import { access } from 'node:fs/promises';

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
