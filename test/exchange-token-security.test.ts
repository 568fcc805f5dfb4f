/**
 * Hostile ID tokens against a real broker: every case must be refused with the right status and code, write an
 * audit record, mint nothing, never answer 500, and never put the token in a log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { createHmac } from 'node:crypto';
import { generateRsaSigningKey } from '../src/dev/token-factory.js';
import { assertDenied, forgeToken, unsignedToken } from './support/assertions.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

const now = () => Math.floor(Date.now() / 1000);

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The same bytes, spelled differently: a 2048-bit signature leaves 4 unused bits in its last character, which decoders ignore. */
function respellLastCharacter(token: string): string {
  const last = BASE64URL.indexOf(token.slice(-1));
  const respelled = token.slice(0, -1) + (BASE64URL[last | 1] as string);
  assert.notEqual(respelled, token);
  assert.deepEqual(Buffer.from(respelled.split('.')[2] as string, 'base64url'), Buffer.from(token.split('.')[2] as string, 'base64url'));
  return respelled;
}

describe('token shape and header attacks', () => {
  const cases: Array<{ name: string; token: () => Promise<string> | string; code: string }> = [
    { name: 'alg none with an empty signature is refused', code: 'invalid_token', token: () => unsignedToken({ alg: 'none', typ: 'JWT' }, h.gitlab.claims(AUDIENCE)) },
    { name: 'alg none with a junk signature is refused', code: 'invalid_token', token: () => unsignedToken({ alg: 'none', kid: h.gitlab.key.kid }, h.gitlab.claims(AUDIENCE), 'AAAA') },
    {
      name: 'HS256 signed with the issuer public key as the secret is refused (RS/HS confusion)',
      code: 'invalid_token',
      token: () => {
        const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: h.gitlab.key.kid })).toString('base64url');
        const payload = Buffer.from(JSON.stringify(h.gitlab.claims(AUDIENCE))).toString('base64url');
        const secret = JSON.stringify(h.gitlab.key.publicJwk);
        const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
        return `${header}.${payload}.${signature}`;
      },
    },
    {
      name: 'RS384 with the right key is refused (RS256 only)',
      code: 'invalid_token',
      token: () => forgeToken(h.gitlab.key, JSON.stringify({ alg: 'RS384', kid: h.gitlab.key.kid }), JSON.stringify(h.gitlab.claims(AUDIENCE)), 'RSA-SHA384'),
    },
    { name: 'a crit header is refused', code: 'invalid_token', token: () => forgeToken(h.gitlab.key, JSON.stringify({ alg: 'RS256', kid: h.gitlab.key.kid, crit: ['exp'], exp: 1 }), JSON.stringify(h.gitlab.claims(AUDIENCE))) },
    { name: 'an ES256 token is refused', code: 'invalid_token', token: async () => {
      const { privateKey } = await generateKeyPair('ES256');
      return new SignJWT(h.gitlab.claims(AUDIENCE)).setProtectedHeader({ alg: 'ES256', kid: h.gitlab.key.kid }).sign(privateKey);
    } },
    { name: 'a jku header is refused without fetching it', code: 'invalid_token', token: () => h.gitlab.token(AUDIENCE, {}, { header: { jku: `${h.gitlab.issuer}/evil/jku` } }) },
    { name: 'an x5u header is refused without fetching it', code: 'invalid_token', token: () => h.gitlab.token(AUDIENCE, {}, { header: { x5u: `${h.gitlab.issuer}/evil/x5u` } }) },
    { name: 'an embedded jwk header is refused', code: 'invalid_token', token: () => h.gitlab.token(AUDIENCE, {}, { header: { jwk: h.gitlab.key.publicJwk } }) },
    { name: 'a token signed by a key the issuer never published is refused', code: 'invalid_token', token: async () => h.gitlab.token(AUDIENCE, {}, { key: await generateRsaSigningKey(h.gitlab.key.kid) }) },
    { name: 'a payload with a duplicate claim is refused even when signed', code: 'invalid_token', token: () => forgeToken(h.gitlab.key, JSON.stringify({ alg: 'RS256', kid: h.gitlab.key.kid }), JSON.stringify(h.gitlab.claims(AUDIENCE)).replace(/}$/, ',"project_id":"21"}')) },
    { name: 'a payload with a __proto__ key is refused even when signed', code: 'invalid_token', token: () => forgeToken(h.gitlab.key, JSON.stringify({ alg: 'RS256', kid: h.gitlab.key.kid }), JSON.stringify(h.gitlab.claims(AUDIENCE)).replace(/}$/, ',"__proto__":{"admin":true}}')) },
    { name: 'a header with a duplicate alg is refused', code: 'invalid_token', token: () => forgeToken(h.gitlab.key, `{"alg":"RS256","alg":"none","kid":"${h.gitlab.key.kid}"}`, JSON.stringify(h.gitlab.claims(AUDIENCE))) },
    { name: 'a JWE-shaped five-part token is refused', code: 'invalid_token', token: () => 'a.b.c.d.e' },
    { name: 'random text is refused', code: 'invalid_token', token: () => 'not-a-token' },
    { name: 'a missing bearer token is refused', code: 'invalid_token', token: () => '' },
    { name: 'a valid token whose signature is respelled in its padding bits is refused (one token, one spelling)', code: 'invalid_token', token: async () => respellLastCharacter(await h.gitlab.token(AUDIENCE)) },
  ];
  for (const testCase of cases) {
    it(testCase.name, async () => {
      const token = await testCase.token();
      const result = await h.exchange(token);
      await assertDenied(h, result, 401, testCase.code, token);
    });
  }

  it('never fetches URLs named in token headers', () => {
    assert.equal(h.gitlab.hitCount('/evil'), 0);
  });
});

describe('issuer and audience', () => {
  const issuerVariants = [
    { name: 'a trailing slash', iss: () => `${h.gitlab.issuer}/` },
    { name: 'upper-case scheme', iss: () => h.gitlab.issuer.replace('http', 'HTTP') },
    { name: 'localhost for 127.0.0.1', iss: () => h.gitlab.issuer.replace('127.0.0.1', 'localhost') },
    { name: 'https for http', iss: () => h.gitlab.issuer.replace('http:', 'https:') },
    { name: 'another host entirely', iss: () => 'https://gitlab.evil.example' },
  ];
  for (const variant of issuerVariants) {
    it(`refuses an issuer that differs by ${variant.name}`, async () => {
      const token = await h.gitlab.token(AUDIENCE, { iss: variant.iss() });
      await assertDenied(h, await h.exchange(token), 401, 'untrusted_issuer', token);
    });
  }

  const audiences: Array<{ name: string; aud: unknown; code?: string }> = [
    { name: 'another audience', aud: 'https://other.test', code: 'audience_mismatch' },
    { name: 'an array with another value besides ours', aud: [AUDIENCE, 'https://other.test'], code: 'audience_mismatch' },
    { name: 'an empty array', aud: [], code: 'audience_mismatch' },
    { name: 'our audience with a trailing slash', aud: `${AUDIENCE}/`, code: 'audience_mismatch' },
    { name: 'a missing aud', aud: null, code: 'audience_mismatch' },
    { name: 'an array holding only ours', aud: [AUDIENCE] },
  ];
  for (const testCase of audiences) {
    it(`${testCase.code ? 'refuses' : 'accepts'} ${testCase.name}`, async () => {
      const token = await h.gitlab.token(AUDIENCE, { aud: testCase.aud });
      const result = await h.exchange(token, { token: { audience: 'https://deploy-api.internal' } });
      if (testCase.code) await assertDenied(h, result, 401, testCase.code, token);
      else assert.equal(result.status, 200, result.text);
    });
  }
});

describe('times', () => {
  const cases: Array<{ name: string; claims: () => Record<string, unknown> }> = [
    { name: 'an expired token', claims: () => ({ iat: now() - 600, nbf: now() - 605, exp: now() - 60 }) },
    { name: 'nbf in the future', claims: () => ({ nbf: now() + 600 }) },
    { name: 'iat in the future', claims: () => ({ iat: now() + 600, nbf: now() - 5, exp: now() + 1200 }) },
    { name: 'a token older than maxTokenAge', claims: () => ({ iat: now() - 3 * 3600, nbf: now() - 3 * 3600, exp: now() + 600 }) },
    { name: 'a lifetime longer than maxTokenAge', claims: () => ({ iat: now() - 10, exp: now() + 3 * 3600 }) },
  ];
  for (const testCase of cases) {
    it(`refuses ${testCase.name} as token_expired`, async () => {
      const token = await h.gitlab.token(AUDIENCE, testCase.claims());
      await assertDenied(h, await h.exchange(token), 401, 'token_expired', token);
    });
  }
  it('refuses exp before iat as invalid_token', async () => {
    const token = await h.gitlab.token(AUDIENCE, { iat: now(), exp: now() - 1 });
    await assertDenied(h, await h.exchange(token), 401, 'invalid_token', token);
  });
  it('accepts a token whose nbf is within the clock tolerance', async () => {
    const token = await h.gitlab.token(AUDIENCE, { nbf: now() + 10 });
    assert.equal((await h.exchange(token)).status, 200);
  });
});

describe('claims', () => {
  const cases: Array<{ name: string; overrides: Record<string, unknown> }> = [
    { name: 'a missing project_id', overrides: { project_id: null } },
    { name: 'a missing jti', overrides: { jti: null } },
    { name: 'a missing ref_path', overrides: { ref_path: null } },
    { name: 'a missing sub', overrides: { sub: null } },
    { name: 'a numeric project_id', overrides: { project_id: 20 } },
    { name: 'a boolean ref_protected', overrides: { ref_protected: true } },
    { name: 'an array environment', overrides: { environment: ['production'] } },
    { name: 'an object pipeline_id', overrides: { pipeline_id: { id: '574' } } },
    { name: 'a project_id that is not a decimal id', overrides: { project_id: '20 ' } },
    { name: 'a sha that is not hex', overrides: { sha: 'zz4a629c0b401fdce83e847fc9589983fc6f46bc' } },
    { name: 'a ref_type other than branch or tag', overrides: { ref_type: 'merge_request' } },
    { name: 'a string exp', overrides: { exp: String(now() + 600) } },
  ];
  for (const testCase of cases) {
    it(`refuses ${testCase.name} as invalid_token`, async () => {
      const token = await h.gitlab.token(AUDIENCE, testCase.overrides);
      const result = await h.exchange(token);
      await assertDenied(h, result, 401, 'invalid_token', token);
    });
  }
});
