/**
 * The broker as an OIDC issuer: ES256 JWTs signed with the first key of a private JWKS. Keys are imported once.
 * Rotation: when the key set is replaced, keys that left it stay published until every token they signed has expired.
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, createPublicKey, randomUUID, sign as signDigest, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, errors as joseErrors, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import { BrokerError } from '../../core/errors.js';
import { HARD_CAP_SECONDS } from '../../core/grants.js';
import { parseSession, SESSION_TYPE, sessionAudience, sessionClaims, type Session } from '../../core/session.js';
import type { TokenMint } from '../../core/grants.js';
import type { JwtSigner, MintContext, MintedToken, SignedSession } from '../../ports.js';

interface LoadedKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  /** base64url of the protected header {alg, kid, typ}: the same for every token this key signs. */
  readonly headerSegment: string;
  /** The same for session tokens, whose typ differs. */
  readonly sessionHeaderSegment: string;
  readonly publicJwk: Record<string, unknown>;
}

interface RetiredKey {
  readonly publicJwk: Record<string, unknown>;
  readonly publishedUntil: number;
}

const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'kid'] as const;

async function loadKey(jwk: JWK): Promise<LoadedKey> {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string' || typeof jwk.kid !== 'string' || jwk.kid.length === 0) {
    throw new TypeError('signing keys must be EC P-256 private JWKs with a kid');
  }
  if (jwk.alg !== undefined && jwk.alg !== 'ES256') throw new TypeError(`signing key ${jwk.kid}: alg must be ES256`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: jwk.d, x: jwk.x ?? '', y: jwk.y ?? '' }, format: 'jwk' });
  } catch (err) {
    throw new TypeError(`signing key ${jwk.kid}: not a valid P-256 private key`, { cause: err });
  }
  // The published public key must be the one that signs: derive it from d and compare.
  const derived = createPublicKey(privateKey).export({ format: 'jwk' });
  if (derived.x !== jwk.x || derived.y !== jwk.y) throw new TypeError(`signing key ${jwk.kid}: x/y do not match d`);
  const publicJwk: Record<string, unknown> = { use: 'sig', alg: 'ES256' };
  for (const member of PUBLIC_MEMBERS) publicJwk[member] = jwk[member];
  const headerSegment = Buffer.from(JSON.stringify({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })).toString('base64url');
  const sessionHeaderSegment = Buffer.from(JSON.stringify({ alg: 'ES256', kid: jwk.kid, typ: SESSION_TYPE })).toString('base64url');
  return { kid: jwk.kid, privateKey, headerSegment, sessionHeaderSegment, publicJwk };
}

/**
 * An ES256 compact JWS (RFC 7515 §7.1, RFC 7518 §3.4): the signature is R‖S, 64 bytes (`ieee-p1363`), not DER.
 * Node's one-shot synchronous sign on a KeyObject imported once: no WebCrypto promise and thread-pool round trip, and
 * none of SignJWT's builder objects, on the exchange hot path.
 */
function signCompact(key: LoadedKey, payload: Record<string, unknown>, headerSegment = key.headerSegment): string {
  const signingInput = `${headerSegment}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = signDigest('sha256', Buffer.from(signingInput, 'latin1'), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

export async function readSigningJwks(path: string): Promise<JWK[]> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as { keys?: unknown };
  if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) throw new TypeError(`${path}: expected a JWKS with at least one key`);
  return parsed.keys as JWK[];
}

/** A fresh ES256 private JWKS (dev mode, tests, and `oidc-broker keys generate`). */
export async function generateSigningJwks(): Promise<{ keys: JWK[] }> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { keys: [{ ...jwk, kid: randomUUID(), alg: 'ES256', use: 'sig' }] };
}

export interface BrokerJwtSigner extends JwtSigner {
  /** Replace the key set (rotation); the first key signs from now on. */
  rotate(keys: readonly JWK[], now: Date): Promise<void>;
}

export async function createJwtSigner(issuer: string, keys: readonly JWK[]): Promise<BrokerJwtSigner> {
  let active = await Promise.all(keys.map(loadKey));
  let retired: RetiredKey[] = [];
  const retention = HARD_CAP_SECONDS.token + 300;
  const publicJwks = (now: Date): { keys: Record<string, unknown>[] } => {
    const nowSeconds = now.getTime() / 1000;
    retired = retired.filter((key) => key.publishedUntil > nowSeconds);
    return { keys: [...active.map((key) => key.publicJwk), ...retired.map((key) => key.publicJwk)] };
  };

  return {
    issuer,
    async sign(plan: TokenMint, context: MintContext): Promise<MintedToken> {
      const signingKey = active[0] as LoadedKey;
      const { subject } = context;
      const issuedAt = Math.floor(context.now.getTime() / 1000);
      // One object literal (JSON.stringify leaves out an undefined environment): this runs on every token exchange.
      const token = signCompact(signingKey, {
        rule: context.rule,
        project_id: subject.project_id,
        project_path: subject.project_path,
        pipeline_id: subject.pipeline_id,
        job_id: subject.job_id,
        ref_path: subject.ref_path,
        sha: subject.sha,
        user_login: subject.user_login,
        source_issuer: context.principal.iss,
        environment: subject.environment,
        iss: issuer,
        // Short and stable for Workload Identity Federation (google.subject ≤ 127 bytes).
        sub: `project:${subject.project_id}:rule:${context.rule}`,
        aud: plan.audience,
        iat: issuedAt,
        nbf: issuedAt - 5,
        exp: Math.floor(plan.expiresAt.getTime() / 1000),
        jti: randomUUID(),
      });
      return { token, expiresAt: plan.expiresAt };
    },
    signSession(session: Session, now: Date): SignedSession {
      const signingKey = active[0] as LoadedKey;
      const issuedAt = Math.floor(now.getTime() / 1000);
      const expiresAt = new Date(session.principal.exp * 1000);
      const payload = { ...sessionClaims(session), iss: issuer, aud: sessionAudience(issuer), iat: issuedAt, exp: session.principal.exp, jti: randomUUID() };
      return { token: signCompact(signingKey, payload, signingKey.sessionHeaderSegment), expiresAt };
    },
    async verifySession(token: string, now: Date): Promise<Session> {
      try {
        // Every published key, retired ones included: a session lives as long as the ID token, longer than a rotation.
        const { payload } = await jwtVerify(token, createLocalJWKSet(publicJwks(now) as { keys: JWK[] }), {
          issuer, audience: sessionAudience(issuer), typ: SESSION_TYPE, algorithms: ['ES256'], currentDate: now, requiredClaims: ['exp', 'iat'],
        });
        return parseSession(payload);
      } catch (err) {
        if (err instanceof BrokerError) throw err;
        if (err instanceof joseErrors.JWTExpired) throw new BrokerError('token_expired', 'the session has ended (the ID token it came from has expired)');
        throw new BrokerError('invalid_token', 'not a session token of this broker', { cause: err });
      }
    },
    publicJwks,
    async rotate(nextKeys: readonly JWK[], now: Date) {
      const next = await Promise.all(nextKeys.map(loadKey));
      if (next.length === 0) throw new TypeError('a key set needs at least one key');
      const kept = new Set(next.map((key) => key.kid));
      const until = now.getTime() / 1000 + retention;
      for (const key of active) if (!kept.has(key.kid)) retired.push({ publicJwk: key.publicJwk, publishedUntil: until });
      retired = retired.filter((key) => !kept.has(key.publicJwk.kid as string));
      active = next;
    },
  };
}
