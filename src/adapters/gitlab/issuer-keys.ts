/**
 * One issuer's signing keys, fetched from its jwks_uri and cached. Time is an argument (`now`, epoch ms), so the cache
 * follows the broker's Clock.
 * - Fresh for `cacheMaxAgeMs`; after that the next use refetches, at most once per `cooldownMs` (failed attempts count),
 *   one fetch in flight, redirects never followed, the body bounded (bounded-fetch.ts).
 * - An issuer that cannot be reached: the cached keys still verify for `outageWindowMs` past their freshness (RFC 5861's
 *   stale-if-error), then every verification is refused as upstream_unavailable (503), never invalid_token (401):
 *   a valid token must not look forged because GitLab is down.
 * - An unknown kid: refetched (once per cooldown); still unknown while the issuer answers, invalid_token; unknown while
 *   it cannot be asked, upstream_unavailable, since a key rotated in during the outage looks exactly like a forged kid.
 */
import { createLocalJWKSet, errors as joseErrors, type CryptoKey } from 'jose';
import { BrokerError } from '../../core/errors.js';
import { boundedFetch, tooLarge } from './bounded-fetch.js';

type LocalKeys = ReturnType<typeof createLocalJWKSet>;

export interface IssuerKeySetOptions {
  readonly url: URL;
  readonly cacheMaxAgeMs: number;
  readonly cooldownMs: number;
  /** How long past `cacheMaxAgeMs` cached keys still verify while the key set cannot be fetched. */
  readonly outageWindowMs: number;
  readonly timeoutMs: number;
  /**
   * Told of every failed fetch (with when the cached keys stop verifying, while they still do), of the moment the cached
   * keys stop verifying, and of the first success after a failure.
   */
  readonly onFetch?: (outcome: KeySetFetchOutcome) => void;
}

export type KeySetFetchOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: BrokerError; readonly cachedKeysUntil: Date | undefined };

export interface IssuerKeySet {
  /** The RS256 key for `kid`, fetching as the rules above allow. Throws BrokerError, or jose's errors for a key that does not fit. */
  key(kid: string, now: number): Promise<CryptoKey>;
  /** Resolves when keys can be used at `now`, refreshing a stale set first when the cooldown allows; throws BrokerError otherwise. */
  load(now: number): Promise<void>;
}

async function download(options: IssuerKeySetOptions): Promise<LocalKeys> {
  let response: Response;
  try {
    response = await boundedFetch(options.url.href, {
      method: 'GET',
      redirect: 'manual',
      headers: { accept: 'application/json, application/jwk-set+json' },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    if (tooLarge(err)) throw new BrokerError('upstream_unavailable', 'the issuer key set is larger than 1 MiB', { cause: err });
    const timedOut = err instanceof Error && err.name === 'TimeoutError';
    throw new BrokerError('upstream_unavailable', timedOut ? 'the issuer key set did not answer in time' : 'the issuer key set could not be loaded', { cause: err });
  }
  if (response.status !== 200) {
    throw new BrokerError('upstream_unavailable', 'the issuer key set could not be loaded', { cause: new Error(`${options.url.href} answered HTTP ${response.status}`) });
  }
  try {
    return createLocalJWKSet((await response.json()) as Parameters<typeof createLocalJWKSet>[0]);
  } catch (err) {
    throw new BrokerError('upstream_unavailable', 'the issuer key set could not be loaded', { cause: err });
  }
}

const secondsUntil = (at: number, now: number): number => Math.max(1, Math.ceil((at - now) / 1000));

/** Creates the cache; nothing is fetched until the first `key` or `usable`. */
export function createIssuerKeySet(options: IssuerKeySetOptions): IssuerKeySet {
  let local: LocalKeys | undefined;
  let fetchedAt = -Infinity;
  let attemptedAt = -Infinity;
  let lastError: BrokerError | undefined;
  let pending: Promise<void> | undefined;
  /** Whether the operator has been told that the cached keys stopped verifying (once per outage). */
  let windowEndReported = false;

  const usableUntil = (): number => fetchedAt + options.cacheMaxAgeMs + options.outageWindowMs;
  const coolingDown = (now: number): boolean => now - attemptedAt < options.cooldownMs;
  const retryAfter = (now: number): number => secondsUntil(attemptedAt + options.cooldownMs, now);

  function fetchKeys(now: number): Promise<void> {
    if (pending) return pending;
    attemptedAt = now;
    pending = download(options)
      .then(
        (next) => {
          local = next;
          fetchedAt = now;
          if (lastError) options.onFetch?.({ ok: true });
          lastError = undefined;
          windowEndReported = false;
        },
        (err: unknown) => {
          lastError = err as BrokerError;
          options.onFetch?.({ ok: false, error: lastError, cachedKeysUntil: local && now < usableUntil() ? new Date(usableUntil()) : undefined });
          throw err;
        },
      )
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  function pastOutageWindow(now: number): BrokerError {
    const error = new BrokerError('upstream_unavailable', 'the issuer key set cannot be fetched and the cached keys are past their outage window', {
      cause: lastError,
      retryAfter: retryAfter(now),
    });
    if (!windowEndReported) {
      windowEndReported = true;
      options.onFetch?.({ ok: false, error, cachedKeysUntil: undefined });
    }
    return error;
  }

  /** The keys to verify with at `now`: fresh, refreshed, or cached within the outage window. */
  async function current(now: number): Promise<LocalKeys> {
    const stale = now - fetchedAt >= options.cacheMaxAgeMs;
    if (local !== undefined && !stale) return local;
    if (local === undefined || !coolingDown(now)) {
      try {
        await fetchKeys(now);
      } catch (err) {
        if (local === undefined || now >= usableUntil()) throw local === undefined ? err : pastOutageWindow(now);
      }
    } else if (now >= usableUntil()) {
      throw pastOutageWindow(now);
    }
    return local as LocalKeys;
  }

  return {
    async key(kid, now) {
      const keys = await current(now);
      try {
        return await keys({ alg: 'RS256', kid });
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      }
      // The kid may have been rotated in: ask again (joining a fetch under way, else at most once per cooldown).
      const fetching = pending ?? (coolingDown(now) ? undefined : fetchKeys(now));
      await fetching?.catch(() => undefined);
      if (lastError) {
        throw new BrokerError('upstream_unavailable', 'the token is signed with a key not in the cached set, and the issuer key set cannot be fetched to look for it', {
          cause: lastError,
          retryAfter: retryAfter(now),
        });
      }
      return (local as LocalKeys)({ alg: 'RS256', kid });
    },
    async load(now) {
      await current(now);
    },
  };
}
