/** Files the CLI writes that other processes read while they may be rewritten (credential files under --refresh). */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';

/**
 * Replace `path` whole or not at all: a temporary file beside it, written and fsynced, then renamed over it. A reader
 * (gcloud re-reading CLOUDSDK_AUTH_ACCESS_TOKEN_FILE while a refresh rewrites it) sees the old file or the new one.
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temporary, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temporary, path);
}
