/**
 * Differential test of our ID token verification (a strict header allow-list, then RS256 with node:crypto) against
 * jose's `jwtVerify`: over 10,000 generated tokens — mutated headers and claims (re-signed with the issuer's key, so
 * they reach every check), and mutated segments and signatures of signed tokens — every token our verifier accepts,
 * jose accepts too with the same key, issuer, audience, clock and tolerance. Deterministic (a fixed seed).
 */
import assert from 'node:assert/strict';
import { KeyObject, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createIdTokenVerifier } from '../src/adapters/gitlab/verifier.js';
import { isBrokerError } from '../src/core/errors.js';
import type { IdTokenVerifier } from '../src/ports.js';
import { startGitLab, type StandInGitLab } from './support/gitlab.js';
import { seededRandom } from './support/seeded-random.js';

const AUDIENCE = 'https://broker.test';
const TOLERANCE = 30;
const MAX_AGE = 3600;
const SIGNED = 1_200;
const SEGMENT_MUTANTS = 9_000;

let gitlab: StandInGitLab;
let verifier: IdTokenVerifier;
let privateKey: KeyObject;
const now = new Date();
const nowSeconds = Math.floor(now.getTime() / 1000);

before(async () => {
  gitlab = await startGitLab();
  privateKey = KeyObject.from(gitlab.key.privateKey);
  verifier = createIdTokenVerifier({
    issuers: [{ issuer: gitlab.issuer, audience: AUDIENCE, apiUrl: gitlab.apiUrl, maxTokenAgeSeconds: MAX_AGE }],
    clockToleranceSeconds: TOLERANCE,
  });
  assert.equal(await verifier.ready(), true);
});
after(() => gitlab.close());


const next = seededRandom(20_261_126);
const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
const b64 = (text: string): string => Buffer.from(text).toString('base64url');

function signed(headerText: string, payloadText: string): string {
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), privateKey).toString('base64url')}`;
}

/** Header texts: mostly valid, often not (alg, typ, kid, extra and dangerous parameters, JSON oddities). */
function headerText(): string {
  const kid = gitlab.key.kid;
  const header: Record<string, unknown> = { alg: 'RS256', kid };
  const roll = next();
  if (roll < 0.6) {
    if (next() < 0.5) header.typ = 'JWT';
    return JSON.stringify(header);
  }
  const variants: Array<() => string> = [
    () => JSON.stringify({ ...header, typ: pick(['jwt', 'at+jwt', 'JOSE', '', 1]) }),
    () => JSON.stringify({ ...header, alg: pick(['rs256', 'RS384', 'RS512', 'PS256', 'ES256', 'HS256', 'none', '', null]) }),
    () => JSON.stringify({ ...header, kid: pick(['other-key', '', 7, null, kid.toUpperCase()]) }),
    () => JSON.stringify({ alg: 'RS256' }),
    () => JSON.stringify({ ...header, [pick(['crit', 'b64', 'jku', 'x5u', 'jwk', 'x5c', 'cty', 'zip', 'enc', 'x5t'])]: pick([['exp'], false, 'https://evil.example/jwks', {}, 'JWT']) }),
    () => `{"alg":"RS256","alg":"none","kid":${JSON.stringify(kid)}}`,
    () => `{"alg":"RS256","kid":${JSON.stringify(kid)},"__proto__":{"alg":"none"}}`,
    () => ` { "alg" : "RS256" , "kid" : ${JSON.stringify(kid)} } `,
    () => `{"alg":"\\u0052S256","kid":${JSON.stringify(kid)}}`,
    () => `\ufeff${JSON.stringify(header)}`,
    () => pick(['[]', '"RS256"', 'null', '{', '{"alg":"RS256","kid":"x",}']),
  ];
  return pick(variants)();
}

/** Payload texts: GitLab claims with times, issuer and audience around the edges, and JSON oddities. */
function payloadText(): string {
  const claims: Record<string, unknown> = gitlab.claims(AUDIENCE, { iat: nowSeconds - 60, nbf: nowSeconds - 65, exp: nowSeconds + 240 });
  const roll = next();
  if (roll < 0.55) return JSON.stringify(claims);
  const edge = () => nowSeconds + pick([-TOLERANCE - 1, -TOLERANCE, -TOLERANCE + 1, -1, 0, 1, TOLERANCE - 1, TOLERANCE, TOLERANCE + 1]);
  const variants: Array<() => void> = [
    () => (claims.exp = edge()),
    () => (claims.nbf = edge()),
    () => (claims.iat = edge()),
    () => (claims.iat = nowSeconds - MAX_AGE - pick([-1, 0, 1, TOLERANCE, TOLERANCE + 1])),
    () => (claims[pick(['exp', 'iat', 'nbf'])] = pick([null, '1700000000', 1.5e9 + 0.5, -1, 1e20, true])),
    () => delete claims[pick(['exp', 'iat', 'nbf', 'iss', 'aud', 'sub', 'project_id', 'jti'])],
    () => (claims.aud = pick([[AUDIENCE], [AUDIENCE, 'https://other.example'], [], 'https://other.example', `${AUDIENCE}/`, 1, [AUDIENCE, AUDIENCE]])),
    () => (claims.iss = pick([`${gitlab.issuer}/`, gitlab.issuer.toUpperCase(), 'https://gitlab.example.com', '', 1])),
    () => (claims[pick(['project_id', 'ref_protected', 'namespace_id'])] = pick([20, true, null, '', '0x14'])),
  ];
  pick(variants)();
  if (next() < 0.1) return JSON.stringify(claims).replace(/}$/, ',"iss":"https://evil.example"}');
  if (next() < 0.05) return pick(['[]', 'null', '"x"', '{']);
  return JSON.stringify(claims);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Segment and signature damage to a signed token (not re-signed). */
function mutateSegments(token: string, others: readonly string[]): string {
  if (next() < 0.3) return token;
  const [header = '', payload = '', signature = ''] = token.split('.');
  const flip = (text: string): string => {
    if (text.length === 0) return text;
    const at = Math.floor(next() * text.length);
    return text.slice(0, at) + pick([...ALPHABET]) + text.slice(at + 1);
  };
  const variants: Array<() => string> = [
    () => `${header}.${payload}.${flip(signature)}`,
    () => `${header}.${payload}.${signature.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(signature.slice(-1)) | pick([1, 2, 3, 8])]}`,
    () => `${header}.${payload}.${signature.slice(0, -pick([1, 2, 4]))}`,
    () => `${header}.${payload}.${signature}${pick(['=', '==', 'A', 'AA', '.'])}`,
    () => `${flip(header)}.${payload}.${signature}`,
    () => `${header}.${flip(payload)}.${signature}`,
    () => `${header}.${(pick(others).split('.')[1] ?? '')}.${signature}`,
    () => `${(pick(others).split('.')[0] ?? '')}.${payload}.${signature}`,
    () => `${header}.${payload}`,
    () => `${header}.${payload}.${signature}.${signature}`,
    () => `${header}..${signature}`,
    () => pick([` ${token}`, `${token} `, `${token}\n`, token.replace('.', '. ')]),
    () => `${header}.${payload}.${Buffer.from(signature, 'base64url').toString('base64')}`,
    () => `${header}.${payload}.${signature.toUpperCase()}`,
  ];
  return pick(variants)();
}

async function oursAccepts(token: string): Promise<boolean> {
  try {
    await verifier.verify(token, now);
    return true;
  } catch (err) {
    assert.ok(isBrokerError(err), `not a coded error for ${token}: ${String(err)}`);
    assert.notEqual(err.code, 'upstream_unavailable', `a token made the verifier report an upstream failure: ${token}`);
    return false;
  }
}

async function joseAccepts(token: string): Promise<string | true> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: [gitlab.key.publicJwk] }), {
      issuer: gitlab.issuer,
      audience: AUDIENCE,
      algorithms: ['RS256'],
      currentDate: now,
      clockTolerance: TOLERANCE,
      maxTokenAge: MAX_AGE,
    });
    return true;
  } catch (err) {
    return String(err);
  }
}

describe('differential: our ID token verification against jose jwtVerify', () => {
  it(`every one of ${SIGNED + SEGMENT_MUTANTS} generated tokens that we accept, jose accepts too`, async (t) => {
    const pool: string[] = [];
    for (let i = 0; i < SIGNED; i += 1) pool.push(signed(headerText(), payloadText()));
    const tokens = [...pool];
    for (let i = 0; i < SEGMENT_MUTANTS; i += 1) tokens.push(mutateSegments(pick(pool), pool));
    let accepted = 0;
    let joseOnly = 0;
    for (const token of tokens) {
      const ours = await oursAccepts(token);
      const jose = await joseAccepts(token);
      if (ours) {
        accepted += 1;
        assert.equal(jose, true, `we accept a token jose refuses (${String(jose)}): ${token}`);
      } else if (jose === true) joseOnly += 1;
    }
    t.diagnostic(`${tokens.length} tokens: ${accepted} accepted by both, ${joseOnly} by jose only, ${tokens.length - accepted - joseOnly} by neither`);
    // The generator must produce both verdicts in numbers, or the comparison says little.
    assert.ok(accepted >= 1_000, `only ${accepted} of ${tokens.length} accepted`);
    assert.ok(tokens.length - accepted >= 5_000, `only ${tokens.length - accepted} refused`);
    // Tokens only jose accepts are expected (we are stricter: header allow-list, canonical base64url, GitLab claims).
    assert.ok(joseOnly > 0, 'no token showed that we are stricter than jose');
  });
});
