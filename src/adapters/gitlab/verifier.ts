/**
 * GitLab ID token verification: issuer allow-list from config (exact `iss`), OIDC discovery with openid-client, keys with
 * jose's remote JWKS (cached, cooldown on unknown kid, one fetch in flight, redirects never followed), RS256 only.
 * Discovery and JWKS documents are read through a fetch that stops at 1 MiB, like the GitLab API client's bound.
 * Every jose/openid-client error is translated to a BrokerError with its cause.
 */
import { Buffer } from 'node:buffer';
import { KeyObject, verify as verifySignature, type webcrypto } from 'node:crypto';
import { createRemoteJWKSet, customFetch as joseCustomFetch, errors as joseErrors } from 'jose';
import * as oidc from 'openid-client';
import { parsePrincipal } from '../../core/claims.js';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import { checkAudience, checkTimes, inspectUnverified } from '../../core/token-checks.js';
import type { IdTokenVerifier, TrustedIssuer, VerifiedIdToken } from '../../ports.js';

export interface VerifierOptions {
  readonly issuers: readonly TrustedIssuer[];
  readonly clockToleranceSeconds?: number;
  /** JWKS cache lifetime and the minimum time between refetches for an unknown kid. */
  readonly jwksCacheMaxAgeMs?: number;
  readonly jwksCooldownMs?: number;
  readonly timeoutMs?: number;
  /** Called when an issuer's discovery or keys cannot be loaded (at most once a minute per issuer and cause), and when they load again. */
  readonly onKeysStatus?: (event: IssuerKeysEvent) => void;
}

/** What an operator needs to fix an issuer that cannot be reached: which URL failed and why. */
export type IssuerKeysEvent =
  | { readonly loaded: false; readonly issuer: string; readonly url: string; readonly cause: string }
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

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

interface IssuerState {
  readonly trusted: TrustedIssuer;
  keys: RemoteKeys | undefined;
  discovering: Promise<RemoteKeys> | undefined;
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

/** A discovery document is a few KiB and GitLab's key set smaller still; a larger answer is not the document we asked for. */
export const MAX_ISSUER_DOCUMENT_BYTES = 1024 * 1024;

class DocumentTooLarge extends Error {
  override readonly name = 'DocumentTooLarge';
}

/** Statuses whose Response may not carry a body (the Fetch standard's null body statuses). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * fetch, but the body is read here, at most MAX_ISSUER_DOCUMENT_BYTES of it (a declared Content-Length over the bound is
 * refused before reading), and handed on as a buffered Response. The caller's AbortSignal still bounds the time.
 */
async function boundedFetch(url: string, init: RequestInit): Promise<Response> {
  const response = await fetch(url, init);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_ISSUER_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw new DocumentTooLarge(`${new URL(url).pathname}: Content-Length ${declared} is over ${MAX_ISSUER_DOCUMENT_BYTES} bytes`);
  }
  if (response.body === null || NULL_BODY_STATUS.has(response.status)) return response;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > MAX_ISSUER_DOCUMENT_BYTES) {
      // Leaving the loop cancels the stream, which closes the connection: nothing past the bound is read.
      throw new DocumentTooLarge(`${new URL(url).pathname}: more than ${MAX_ISSUER_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers });
}

function tooLarge(err: unknown): DocumentTooLarge | undefined {
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof DocumentTooLarge) return current;
  }
  return undefined;
}

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\./.test(url.hostname);
}

function mapJoseError(err: unknown): BrokerError {
  if (isBrokerError(err)) return err;
  if (tooLarge(err)) return new BrokerError('upstream_unavailable', 'the issuer key set is larger than 1 MiB', { cause: err });
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new BrokerError('invalid_token', 'unknown signing key (kid)', { cause: err });
  if (err instanceof joseErrors.JWKSTimeout) return new BrokerError('upstream_unavailable', 'the issuer key set did not answer in time', { cause: err });
  if (err instanceof joseErrors.JOSEError) {
    if (err.code === 'ERR_JWKS_INVALID' || err.code === 'ERR_JOSE_GENERIC') {
      return new BrokerError('upstream_unavailable', 'the issuer key set could not be loaded', { cause: err });
    }
    return new BrokerError('invalid_token', 'signature verification failed', { cause: err });
  }
  if (err instanceof TypeError || (err instanceof Error && err.name === 'AbortError')) {
    return new BrokerError('upstream_unavailable', 'the issuer key set could not be loaded', { cause: err });
  }
  return new BrokerError('upstream_unavailable', 'token verification failed unexpectedly', { cause: err });
}

/** Creates the verifier; call `ready()` to warm discovery and keys (the server does so at start). */
export function createIdTokenVerifier(options: VerifierOptions): IdTokenVerifier {
  const tolerance = options.clockToleranceSeconds ?? 30;
  const states = new Map<string, IssuerState>();
  for (const trusted of options.issuers) states.set(trusted.issuer, { trusted, keys: undefined, discovering: undefined, url: trusted.issuer, reported: undefined });

  async function discoverKeys(state: IssuerState): Promise<RemoteKeys> {
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
    const keys = createRemoteJWKSet(keysUrl, {
      cacheMaxAge: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      timeoutDuration: options.timeoutMs ?? 5000,
      [joseCustomFetch]: boundedFetch,
    });
    try {
      await keys.reload();
    } catch (err) {
      throw mapJoseError(err);
    }
    return keys;
  }

  function keysFor(state: IssuerState): Promise<RemoteKeys> | RemoteKeys {
    if (state.keys) return state.keys;
    state.discovering ??= discoverKeys(state).then(
      (keys) => {
        state.keys = keys;
        state.discovering = undefined;
        if (state.reported) options.onKeysStatus?.({ loaded: true, issuer: state.trusted.issuer });
        state.reported = undefined;
        return keys;
      },
      (err: unknown) => {
        state.discovering = undefined;
        const cause = causeChain(err);
        const now = Date.now();
        if (state.reported?.cause !== cause || now - state.reported.at >= REPEAT_FAILURE_LOG_MS) {
          state.reported = { cause, at: now };
          options.onKeysStatus?.({ loaded: false, issuer: state.trusted.issuer, url: state.url, cause });
        }
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
      const keys = await keysFor(state);
      // inspectUnverified has refused every header but {alg: RS256, kid, typ: JWT} (no crit, b64, jku, jwk, x5u, x5c),
      // so what is left of a JWS verification is: the key for this kid from the issuer's set, and the signature over
      // the exact signing input. jose's key set still selects (kid, kty, use, key_ops, alg), caches and refetches.
      let valid: boolean;
      try {
        const key = rs256KeyObject(await keys({ alg: 'RS256', kid: unverified.kid }));
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
      const results = await Promise.allSettled([...states.values()].map((state) => keysFor(state)));
      return results.every((result) => result.status === 'fulfilled');
    },
  };
}
