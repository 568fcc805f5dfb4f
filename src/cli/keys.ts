/**
 * `oidc-broker keys generate|rotate`: the broker's ES256 signing JWKS (`signing.keysFile`). The first key signs; the
 * others stay published in /.well-known/jwks.json so tokens they signed still verify. Files are written 0600.
 */
import { randomUUID } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import { createJwtSigner, generateSigningJwks, readSigningJwks } from '../adapters/jwt/signer.js';
import { assertReadable } from './options.js';
import { EXIT } from './output.js';

/** Write `keys` to `path` with mode 0600 via a temporary file and a rename, so a reader never sees half a file. */
async function writeJwks(path: string, keys: readonly JWK[], exclusive: boolean): Promise<void> {
  const text = `${JSON.stringify({ keys }, null, 2)}\n`;
  if (exclusive) return writeFile(path, text, { mode: 0o600, flag: 'wx' });
  const temporary = join(dirname(path), `.${randomUUID()}.tmp`);
  await writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
  await rename(temporary, path);
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('generate and rotate the broker\'s ES256 signing keys (JWKS)');

  keys
    .command('generate')
    .description('write a new ES256 signing JWKS (one key with a kid, mode 0600); refuses to overwrite a file')
    .requiredOption('--out <file>', 'where to write the JWKS (signing.keysFile in the config)')
    .action(async (options: { out: string }) => {
      const jwks = await generateSigningJwks();
      try {
        await writeJwks(options.out, jwks.keys, true);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        console.error(`${options.out} exists: use keys rotate --file ${options.out} to add a key to it`);
        return void (process.exitCode = EXIT.usage);
      }
      console.log(`wrote ${options.out} (0600) with signing key ${String(jwks.keys[0]?.kid)}`);
    });

  keys
    .command('rotate')
    .description('add a new signing key in front (it signs from the next reload); older keys stay published')
    .requiredOption('--file <file>', 'the signing JWKS to rotate')
    .action(async (options: { file: string }) => {
      await assertReadable(options.file);
      const existing = await readSigningJwks(options.file);
      await createJwtSigner('https://check.invalid', existing); // refuses a file the broker would refuse
      const [added] = (await generateSigningJwks()).keys;
      if (!added) throw new TypeError('no key generated');
      await writeJwks(options.file, [added, ...existing], false);
      console.log(`added signing key ${String(added.kid)}; ${existing.length} older key(s) stay published: ${existing.map((key) => key.kid).join(', ')}`);
      console.log('send the broker SIGHUP (or restart it) to sign with the new key');
    });
}
