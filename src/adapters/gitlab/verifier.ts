/**
 * GitLab ID token verification: issuer allow-list from config (exact `iss`), OIDC discovery with openid-client, keys
 * from the issuer's JWKS (issuer-keys.ts: cached, cooldown on unknown kid, one fetch in flight, redirects never
 * followed, cached keys kept for a bounded window while the issuer is down), RS256 only. Discovery and JWKS documents
 * are read through a fetch that stops at 1 MiB. Every jose/openid-client error is translated to a BrokerError with its
 * cause.
 */
import { Buffer } from 'node:buffer';
import { KeyObject, verify as verifySignature, type webcrypto } from 'node:crypto';
import { errors as joseErrors } from 'jose';
import * as oidc from 'openid-client';
import { parsePrincipal } from '../../core/claims.js';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import { checkAudience, checkTimes, inspectUnverified } from '../../core/token-checks.js';
import type { IdTokenVerifier, TrustedIssuer, VerifiedIdToken } from '../../ports.js';
import { boundedFetch, tooLarge } from './bounded-fetch.js';
import { createIssuerKeySet, type IssuerKeySet, type KeySetFetchOutcome } from './issuer-keys.js';

export { MAX_ISSUER_DOCUMENT_BYTES } from './bounded-fetch.js';

/** How long cached issuer keys keep verifying while the issuer's key set cannot be fetched, unless configured. */
export const DEFAULT_JWKS_OUTAGE_WINDOW_MS = 15 * 60_000;

export interface VerifierOptions {
  readonly issuers: readonly TrustedIssuer[];
  readonly clockToleranceSeconds?: number;
  /** JWKS cache lifetime and the minimum time between refetches (an unknown kid, a stale or unreachable set). */
  readonly jwksCacheMaxAgeMs?: number;
  readonly jwksCooldownMs?: number;
  /** Per issuer: how long past the cache lifetime cached keys still verify while the key set cannot be fetched. */
  readonly jwksOutageWindowMs?: ReadonlyMap<string, number>;
  readonly timeoutMs?: number;
  /** Epoch milliseconds for `ready()` (verify takes its `now`); the system clock unless given. */
  readonly now?: () => number;
  /** Called when an issuer's discovery or keys cannot be loaded (at most once a minute per issuer and cause), and when they load again. */
  readonly onKeysStatus?: (event: IssuerKeysEvent) => void;
}

/**
 * What an operator needs to fix an issuer that cannot be reached: which URL failed and why, and until when the keys
 * cached before the failure still verify (absent when none do: the issuer's tokens are refused, readiness is false).
 */
export type IssuerKeysEvent =
  | { readonly loaded: false; readonly issuer: string; readonly url: string; readonly cause: string; readonly cachedKeysUntil?: Date }
  | { readonly loaded: true; readonly issuer: string };

const REPEAT_FAILURE_LOG_MS = 60_000;

/** The innermost causes of an error, joined: "issuer discovery failed: fetch failed: connect ECONNREFUSED …". */
function causeChain(err: unknown): string {
  const parts: string[] = [];
  for (let current = err; current !== undefined && current !== null && parts.length < 5; current = (current as { cause?: unknown }).cause) {
    const error = current as { message?: unknown; code?: unknown };
    const text = typeof error.message === 'string' ? error.message : String(current);
    parts.push(typeof error.code === 'string' && !text.includes(error.code) ? `${text} (${error.code})` : text);
  }
  return parts.join(': ');
}

interface IssuerState {
  readonly trusted: TrustedIssuer;
  keys: IssuerKeySet | undefined;
  discovering: Promise<IssuerKeySet> | undefined;
  /** The URL being fetched (discovery, then the key set), for the failure report. */
  url: string;
  reported: { cause: string; at: number } | undefined;
}

const decodeBase64Url = (segment: string): string => Buffer.from(segment, 'base64url').toString('utf8');

/**
 * jose's key set hands out one imported CryptoKey per JWK (and keeps handing out the same one), so its KeyObject is
 * derived once. Node's one-shot, synchronous `crypto.verify` on a KeyObject costs about half of WebCrypto's
 * `subtle.verify` (no thread-pool round trip, no promise, no ArrayBuffer copies) on the exchange hot path.
 */
const keyObjects = new WeakMap<object, KeyObject>();

function rs256KeyObject(key: unknown): KeyObject {
  let keyObject = keyObjects.get(key as object);
  if (!keyObject) {
    keyObject = KeyObject.from(key as webcrypto.CryptoKey);
    // What jose checks before an RS256 verify: an RSA public key of at least 2048 bits (its TypeError maps the same way).
    const modulusLength = keyObject.asymmetricKeyDetails?.modulusLength;
    if (keyObject.type !== 'public' || keyObject.asymmetricKeyType !== 'rsa' || modulusLength === undefined || modulusLength < 2048) {
      throw new TypeError('RS256 requires an RSA public key of 2048 bits or larger');
    }
    keyObjects.set(key as object, keyObject);
  }
  return keyObject;
}

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\./.test(url.hostname);
}

/** Errors of the key lookup and signature check; fetch failures arrive as BrokerErrors from issuer-keys.ts. */
function mapJoseError(err: unknown): BrokerError {
  if (isBrokerError(err)) return err;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new BrokerError('invalid_token', 'unknown signing key (kid)', { cause: err });
  // The issuer publishes a key for this kid that cannot verify RS256 (rs256KeyObject's TypeError): its fault, not the caller's.
  if (err instanceof TypeError) return new BrokerError('upstream_unavailable', 'the issuer key set could not be loaded', { cause: err });
  if (err instanceof joseErrors.JOSEError) return new BrokerError('invalid_token', 'signature verification failed', { cause: err });
  return new BrokerError('upstream_unavailable', 'token verification failed unexpectedly', { cause: err });
}

/** Creates the verifier; call `ready()` to warm discovery and keys (the server does so at start). */
export function createIdTokenVerifier(options: VerifierOptions): IdTokenVerifier {
  const tolerance = options.clockToleranceSeconds ?? 30;
  const states = new Map<string, IssuerState>();
  for (const trusted of options.issuers) states.set(trusted.issuer, { trusted, keys: undefined, discovering: undefined, url: trusted.issuer, reported: undefined });

  const clock = options.now ?? Date.now;

  function reportFailure(state: IssuerState, err: unknown, cachedKeysUntil?: Date): void {
    const cause = causeChain(err);
    const at = clock();
    if (state.reported?.cause === cause && at - state.reported.at < REPEAT_FAILURE_LOG_MS) return;
    state.reported = { cause, at };
    options.onKeysStatus?.({ loaded: false, issuer: state.trusted.issuer, url: state.url, cause, ...(cachedKeysUntil ? { cachedKeysUntil } : {}) });
  }

  function reportLoaded(state: IssuerState): void {
    if (state.reported) options.onKeysStatus?.({ loaded: true, issuer: state.trusted.issuer });
    state.reported = undefined;
  }

  async function discoverKeys(state: IssuerState, now: number): Promise<IssuerKeySet> {
    const issuerUrl = new URL(state.trusted.issuer);
    const insecure = issuerUrl.protocol === 'http:' && isLoopback(issuerUrl);
    let configuration: oidc.Configuration;
    state.url = `${state.trusted.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    try {
      configuration = await oidc.discovery(issuerUrl, 'oidc-broker', undefined, undefined, {
        execute: insecure ? [oidc.allowInsecureRequests] : [],
        timeout: Math.ceil((options.timeoutMs ?? 5000) / 1000),
        [oidc.customFetch]: boundedFetch,
      });
    } catch (err) {
      if (tooLarge(err)) throw new BrokerError('upstream_unavailable', 'the issuer discovery document is larger than 1 MiB', { cause: err });
      throw new BrokerError('upstream_unavailable', 'issuer discovery failed', { cause: err });
    }
    const jwksUri = configuration.serverMetadata().jwks_uri;
    if (jwksUri === undefined) throw new BrokerError('upstream_unavailable', 'issuer discovery has no jwks_uri');
    const keysUrl = new URL(jwksUri);
    state.url = keysUrl.href;
    // Keys only from the issuer's own origin: a compromised discovery document must not point us elsewhere.
    if (keysUrl.origin !== issuerUrl.origin) throw new BrokerError('upstream_unavailable', 'jwks_uri is not on the issuer host');
    const keys: IssuerKeySet = createIssuerKeySet({
      url: keysUrl,
      cacheMaxAgeMs: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
      cooldownMs: options.jwksCooldownMs ?? 30_000,
      outageWindowMs: options.jwksOutageWindowMs?.get(state.trusted.issuer) ?? DEFAULT_JWKS_OUTAGE_WINDOW_MS,
      timeoutMs: options.timeoutMs ?? 5000,
      // Refetches after discovery; the first load's failure is reported by keysFor.
      onFetch: (outcome: KeySetFetchOutcome) => {
        if (state.keys !== keys) return;
        if (outcome.ok) reportLoaded(state);
        else reportFailure(state, outcome.error, outcome.cachedKeysUntil);
      },
    });
    await keys.load(now);
    return keys;
  }

  async function keysFor(state: IssuerState, now: number): Promise<IssuerKeySet> {
    if (state.keys) return state.keys;
    state.discovering ??= discoverKeys(state, now).then(
      (keys) => {
        state.keys = keys;
        state.discovering = undefined;
        reportLoaded(state);
        return keys;
      },
      (err: unknown) => {
        state.discovering = undefined;
        reportFailure(state, err);
        throw err;
      },
    );
    return state.discovering;
  }

  return {
    async verify(token: string, now: Date): Promise<VerifiedIdToken> {
      const unverified = inspectUnverified(token, decodeBase64Url);
      const state = states.get(unverified.iss);
      if (!state) throw new BrokerError('untrusted_issuer', 'iss is not a configured issuer');
      const keys = await keysFor(state, now.getTime());
      // inspectUnverified has refused every header but {alg: RS256, kid, typ: JWT} (no crit, b64, jku, jwk, x5u, x5c),
      // so what is left of a JWS verification is: the key for this kid from the issuer's set, and the signature over
      // the exact signing input. jose's local key set still selects (kid, kty, use, key_ops, alg); issuer-keys.ts
      // caches and refetches.
      let valid: boolean;
      try {
        const key = rs256KeyObject(await keys.key(unverified.kid, now.getTime()));
        const dot = token.lastIndexOf('.');
        valid = verifySignature('sha256', Buffer.from(token.slice(0, dot), 'latin1'), key, Buffer.from(token.slice(dot + 1), 'base64url'));
      } catch (err) {
        throw mapJoseError(err);
      }
      if (!valid) throw new BrokerError('invalid_token', 'signature verification failed', { cause: new joseErrors.JWSSignatureVerificationFailed() });
      const payload = unverified.payload;
      checkAudience(payload.aud, state.trusted.audience);
      const principal = parsePrincipal(payload, state.trusted.audience);
      checkTimes(principal, now, { maxTokenAgeSeconds: state.trusted.maxTokenAgeSeconds, toleranceSeconds: tolerance });
      return { issuer: state.trusted, principal };
    },
    async ready(): Promise<boolean> {
      // Keys usable now: fresh, refreshed (a stale set is refetched here when the cooldown allows, so readiness probes
      // keep the cache warm and notice an outage), or cached within the outage window.
      const now = clock();
      const results = await Promise.allSettled([...states.values()].map(async (state) => (await keysFor(state, now)).load(now)));
      return results.every((result) => result.status === 'fulfilled');
    },
  };
}
