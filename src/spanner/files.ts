/** Reading a migrations directory: every file's text and the SHA-256 of its bytes, in name order. */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError } from '../core/errors.js';
import type { MigrationFile } from '../core/spanner/plan.js';

export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isFile() && entry.name.endsWith('.sql')).map((entry) => entry.name).sort();
  } catch (err) {
    throw new BrokerError('invalid_request', `--dir ${dir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  return Promise.all(names.map(async (name) => {
    const bytes = await readFile(join(dir, name));
    return { name, text: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
  }));
}
