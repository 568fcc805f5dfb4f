/**
 * Shared plumbing for @gitbeaker/rest calls: the host gitbeaker wants, and the broker's read_api token from its file
 * (read once per issuer).
 */
import { readFile } from 'node:fs/promises';
import type { TrustedIssuer } from '../../ports.js';

/** gitbeaker wants the host and appends /api/v4 itself (config refuses an apiUrl that does not end in it). */
export function gitbeakerHost(apiUrl: string): string {
  const host = apiUrl.replace(/\/+$/, '').replace(/\/api\/v4$/, '');
  if (host === apiUrl.replace(/\/+$/, '')) throw new TypeError(`apiUrl must end with /api/v4: ${apiUrl}`);
  return host;
}

/** Reads each issuer's API token file once; a missing file yields an anonymous client (public projects only). */
export function createTokenReader(tokenFiles: ReadonlyMap<string, string | undefined>): (issuer: TrustedIssuer) => Promise<string> {
  const cache = new Map<string, Promise<string>>();
  return (issuer) => {
    let pending = cache.get(issuer.issuer);
    if (!pending) {
      const file = tokenFiles.get(issuer.issuer);
      pending = file === undefined ? Promise.resolve('') : readFile(file, 'utf8').then((text) => text.trim());
      pending.catch(() => cache.delete(issuer.issuer));
      cache.set(issuer.issuer, pending);
    }
    return pending;
  };
}
