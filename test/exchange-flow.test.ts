/**
 * The exchange end to end: the broker JWT it mints verifies against its own discovery and JWKS, policy matching on
 * real tokens (look-alikes, tag vs branch, id vs path, forks), replay under parallel load, request limits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { assertDenied, assertTokenNotLogged } from './support/assertions.js';
import { startHarness, type CallResult, type Harness } from './support/harness.js';
import { AUDIENCE, DEPLOY_AUDIENCE } from './support/policies.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

describe('an allowed exchange', () => {
  it('mints a broker JWT that verifies against the broker discovery document and JWKS', async () => {
    const idToken = await h.gitlab.token(AUDIENCE);
    const result = await h.exchange(idToken);
    assert.equal(result.status, 200, result.text);
    assert.equal(result.body.rule, 'payments-deploy-production');
    const grants = result.body.grants as { token: { token: string; expiresAt: string } };
    const discovery = (await h.call('/.well-known/openid-configuration')).body;
    assert.equal(discovery.issuer, AUDIENCE);
    const jwks = (await h.call('/.well-known/jwks.json')).body as { keys: Array<Record<string, unknown>> };
    assert.ok(jwks.keys.every((key) => key.d === undefined), 'private key material must never be published');
    const { payload, protectedHeader } = await jwtVerify(grants.token.token, createLocalJWKSet(jwks as never), { issuer: AUDIENCE, audience: DEPLOY_AUDIENCE, algorithms: ['ES256'] });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sub, 'project:20:rule:payments-deploy-production');
    assert.equal(payload.project_path, 'payments/api');
    assert.equal(payload.pipeline_id, '574');
    assert.equal(payload.job_id, '302');
    assert.equal(payload.environment, 'production');
    assert.equal(payload.rule, 'payments-deploy-production');
    assert.ok((payload.exp as number) - (payload.iat as number) <= 600, 'rule lifetime 10m caps the token');
    assert.deepEqual(result.body.subject, {
      project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main',
      sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', environment: 'production', user_login: 'alice',
    });
    const records = (await h.auditRecords()).filter((record) => record.requestId === result.body.requestId);
    assert.deepEqual(records.map((record) => record.phase), ['intent', 'result']);
    const minted = (records[1]?.minted as Array<Record<string, unknown>>)[0];
    assert.equal(minted?.kind, 'token');
    assert.match(String(minted?.sha256), /^[0-9a-f]{64}$/);
    await assertTokenNotLogged(h, idToken);
    await assertTokenNotLogged(h, grants.token.token);
  });

  it('caps the credential at the ID token exp', async () => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    const result = await h.exchange(await h.gitlab.token(AUDIENCE, { exp }));
    assert.equal(result.status, 200, result.text);
    const expiresAt = Date.parse((result.body.grants as { token: { expiresAt: string } }).token.expiresAt);
    assert.ok(expiresAt <= exp * 1000, 'a credential never outlives the ID token');
  });

  it('signs with a kid that the JWKS publishes', async () => {
    const result = await h.exchange(await h.gitlab.token(AUDIENCE));
    const { kid } = decodeProtectedHeader((result.body.grants as { token: { token: string } }).token.token);
    const jwks = (await h.call('/.well-known/jwks.json')).body as { keys: Array<{ kid: string }> };
    assert.ok(jwks.keys.some((key) => key.kid === kid));
  });

  it('answers 403 grant_not_allowed for an audience the rule does not list, and mints nothing', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    await assertDenied(h, await h.exchange(token, { token: { audience: 'https://elsewhere.internal' } }), 403, 'grant_not_allowed', token);
  });

  it('answers 403 grant_not_allowed for a grant kind the rule does not give', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    await assertDenied(h, await h.exchange(token, { google: {} }), 403, 'grant_not_allowed', token);
  });
});

describe('policy matching on real tokens', () => {
  const denied: Array<{ name: string; overrides: Record<string, unknown>; code?: string }> = [
    { name: 'ref_protected "True" is not "true"', overrides: { ref_protected: 'True' } },
    { name: 'an unprotected ref', overrides: { ref_protected: 'false' } },
    { name: 'a case variant of the project path', overrides: { project_path: 'Payments/api' } },
    { name: 'a Cyrillic look-alike in the project path', overrides: { project_path: 'payments/\u0430pi' } },
    { name: 'a full-width look-alike in the environment', overrides: { environment: '\uff50roduction' } },
    { name: 'a trailing space in the environment', overrides: { environment: 'production ' } },
    { name: 'another project with the same path (id differs)', overrides: { project_id: '21' } },
    { name: 'the same id under another path (renamed project)', overrides: { project_path: 'payments/api-old' } },
    { name: 'a tag named like the protected branch', overrides: { ref_type: 'tag', ref: 'main', ref_path: 'refs/tags/main' } },
    { name: 'an unpinned pipeline definition', overrides: { ci_config_ref_uri: 'gitlab.example.com/evil/ci//.gitlab-ci.yml@refs/heads/main' } },
    { name: 'a pipeline definition from another project (null)', overrides: { ci_config_ref_uri: null } },
    { name: 'an environment that is absent', overrides: { environment: null } },
    { name: 'a review environment two levels deep (glob * stays in one segment)', overrides: { environment: 'review/a/b' } },
    { name: 'a release tag regex suffix (anchored)', overrides: { environment: null, ref_type: 'tag', ref: 'v1.2.3-evil', ref_path: 'refs/tags/v1.2.3-evil' } },
    { name: 'a release tag regex prefix (anchored)', overrides: { environment: null, ref_type: 'tag', ref: 'x/v1.2.3', ref_path: 'refs/tags/x/v1.2.3' } },
    { name: 'a fork pipeline (job_project_id differs from project_id)', overrides: { job_project_id: '99', job_project_path: 'mallory/api' } },
  ];
  for (const testCase of denied) {
    it(`denies ${testCase.name}`, async () => {
      const token = await h.gitlab.token(AUDIENCE, testCase.overrides);
      await assertDenied(h, await h.exchange(token, { token: {} }), 403, testCase.code ?? 'policy_denied', token);
    });
  }

  const allowed: Array<{ name: string; overrides: Record<string, unknown>; rule: string }> = [
    { name: 'a one-level review environment', overrides: { environment: 'review/feature-x' }, rule: 'payments-review' },
    { name: 'a semver release tag', overrides: { environment: null, ref_type: 'tag', ref: 'v1.2.3', ref_path: 'refs/tags/v1.2.3' }, rule: 'payments-release-tags' },
    { name: 'a fork pipeline where the rule turns sameProject off', overrides: { project_id: '77', job_project_id: '99' }, rule: 'platform-fork-tolerant' },
  ];
  for (const testCase of allowed) {
    it(`allows ${testCase.name}`, async () => {
      const result = await h.exchange(await h.gitlab.token(AUDIENCE, testCase.overrides), { token: {} });
      assert.equal(result.status, 200, result.text);
      assert.equal(result.body.rule, testCase.rule);
    });
  }

  it('names the failing conditions in reasons, for rules of the caller project only', async () => {
    const token = await h.gitlab.token(AUDIENCE, { environment: 'staging' });
    const result = await h.exchange(token);
    const reasons = result.body.reasons as Array<{ rule: string; name: string; detail: string }>;
    assert.ok(reasons.some((reason) => reason.rule === 'payments-deploy-production' && reason.name === 'environment' && reason.detail.includes('staging')));
    assert.ok(!reasons.some((reason) => reason.rule === 'platform-fork-tolerant'), 'another project rule leaked');
  });

  it('a denied request costs no GitLab API call', async () => {
    const before = h.gitlab.hitCount('/api/v4');
    const token = await h.gitlab.token(AUDIENCE, { project_id: '4242' });
    await assertDenied(h, await h.exchange(token), 403, 'policy_denied', token);
    assert.equal(h.gitlab.hitCount('/api/v4'), before);
  });
});

describe('replay', () => {
  it('lets exactly one of 20 parallel exchanges of one token through', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    const results = await Promise.all(Array.from({ length: 20 }, () => h.exchange(token)));
    const statuses = results.map((result) => result.status).sort();
    assert.equal(statuses.filter((status) => status === 200).length, 1, JSON.stringify(statuses));
    assert.equal(statuses.filter((status) => status === 409).length, 19);
    for (const result of results.filter((r) => r.status === 409)) await assertDenied(h, result, 409, 'token_replayed', token);
  });

  it('releases the jti when nothing was returned, so a denied token can be retried', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    await assertDenied(h, await h.exchange(token, { token: { audience: 'https://nope.internal' } }), 403, 'grant_not_allowed', token);
    assert.equal((await h.exchange(token)).status, 200);
    assert.equal((await h.exchange(token)).status, 409);
  });

  it('explain never consumes the jti', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    const explained = await h.call('/v1/explain', { token, body: { grants: { token: {} } } });
    assert.equal(explained.status, 200);
    assert.equal(explained.body.allowed, true);
    assert.equal((await h.exchange(token)).status, 200);
  });
});

describe('request limits and malformed requests', () => {
  const cases: Array<{ name: string; status: number; code: string; send: (token: string) => Promise<CallResult> }> = [
    { name: 'a body over 64 KiB', status: 413, code: 'payload_too_large', send: (token) => h.call('/v1/exchange', { token, body: JSON.stringify({ grants: { token: {} }, pad: 'x'.repeat(70 * 1024) }) }) },
    { name: 'an Authorization header over 16 KiB', status: 413, code: 'payload_too_large', send: () => h.call('/v1/exchange', { token: 'a'.repeat(17 * 1024), body: { grants: { token: {} } } }) },
    { name: 'malformed JSON', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: '{"grants": {' }) },
    { name: 'a JSON array body', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: '[]' }) },
    { name: 'an empty body', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: '' }) },
    { name: 'an unknown grant', status: 400, code: 'invalid_request', send: (token) => h.exchange(token, { aws: {} }) },
    { name: 'no grant at all', status: 400, code: 'invalid_request', send: (token) => h.exchange(token, {}) },
    { name: 'an unknown top-level field', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: { grants: { token: {} }, extra: 1 } }) },
    { name: 'an unknown field inside a grant', status: 400, code: 'invalid_request', send: (token) => h.exchange(token, { token: { audience: DEPLOY_AUDIENCE, lifetime: '24h' } }) },
    { name: 'a duplicate key in the body', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: '{"grants":{"token":{}},"grants":{"google":{}}}' }) },
    { name: 'a body in another charset', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: '{}', headers: { 'content-type': 'application/json; charset=koi8-r' } }) },
    // What a browser may post cross-site without a preflight: refused even with a valid token and a valid body.
    { name: 'a text/plain body', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: { grants: { token: {} } }, headers: { 'content-type': 'text/plain' } }) },
    { name: 'a form post', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: { grants: { token: {} } }, headers: { 'content-type': 'application/x-www-form-urlencoded' } }) },
    { name: 'a media type that only starts like JSON', status: 400, code: 'invalid_request', send: (token) => h.call('/v1/exchange', { token, body: { grants: { token: {} } }, headers: { 'content-type': 'application/jsonx' } }) },
  ];
  for (const testCase of cases) {
    it(`refuses ${testCase.name} with ${testCase.status} ${testCase.code}`, async () => {
      const token = await h.gitlab.token(AUDIENCE);
      await assertDenied(h, await testCase.send(token), testCase.status, testCase.code, token);
      assert.equal((await h.exchange(token)).status, 200, 'a refused request must not spend the jti');
    });
  }

  it('accepts application/json in any case, with a UTF-8 charset parameter', async () => {
    const result = await h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: { grants: { token: {} } }, headers: { 'content-type': 'Application/JSON; charset="UTF-8"' } });
    assert.equal(result.status, 200, result.text);
  });

  it('answers 404 problem+json for unknown paths', async () => {
    const result = await h.call('/v1/nope');
    assert.equal(result.status, 404);
    assert.equal(result.body.code, 'not_found');
  });
});
