/**
 * Shared plumbing for @gitbeaker/rest calls: the client per issuer, the broker's read_api token from its file, a
 * per-request deadline, and the translation of every SDK failure to `upstream_unavailable` with its cause.
 */
import { readFile } from 'node:fs/promises';
import { BrokerError, isBrokerError } from '../../core/errors.js';
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

/**
 * Runs `call` unless the deadline already passed; any failure becomes upstream_unavailable. For callers whose caller
 * races the deadline itself (gatherFacts): no abort listener, which costs more than the call's own bookkeeping.
 */
export async function upstreamCall<T>(what: string, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
  if (signal.aborted) throw new BrokerError('upstream_unavailable', `GitLab ${what}: deadline passed`, { cause: signal.reason });
  try {
    return await call();
  } catch (err) {
    if (isBrokerError(err)) throw err;
    throw new BrokerError('upstream_unavailable', `GitLab ${what} failed`, { cause: err });
  }
}
