/**
 * The google grant through POST /v1/exchange, with the broker built from a config whose `google` section points at the
 * stand-in Google (real HTTP, the SDK's REST transport, ADC from GOOGLE_APPLICATION_CREDENTIALS): scopes, lifetimes,
 * delegates, the Spanner database role, error mapping, retries inside the deadline, all-or-nothing with three grants.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { compilePolicy, PolicyError } from '../src/core/policy/compile.js';
import { parse } from 'yaml';
import { assertDenied, assertTokenNotLogged, waitForAudit } from './support/assertions.js';
import { DELEGATE, DELEGATED_TARGET, MISSING, SPANNER_ADMIN, SPANNER_DATA, startGoogleBroker, TARGET, UNBOUND, type GoogleBroker } from './support/google-broker.js';
import { AUDIENCE } from './support/policies.js';

let gb: GoogleBroker;
const nowSeconds = () => Math.floor(Date.now() / 1000);

before(async () => {
  gb = await startGoogleBroker();
});
after(async () => {
  await gb.close();
});
beforeEach(() => gb.resetFaults());

const token = (overrides: Record<string, unknown> = {}) => gb.h.gitlab.token(AUDIENCE, overrides);
const lastRequest = () => gb.google.generateRequests.at(-1);
type GoogleGrant = { accessToken: string; expiresAt: string; serviceAccount: string; scopes: string[]; spannerDatabaseRole?: string };
const googleOf = (body: Record<string, unknown>) => (body.grants as { google: GoogleGrant }).google;

describe('the google grant', () => {
  it('mints a token with the requested subset of the rule\'s scopes and returns the Spanner database role', async () => {
    const idToken = await token();
    const result = await gb.h.exchange(idToken, { google: { scopes: [SPANNER_DATA] } });
    assert.equal(result.status, 200, result.text);
    const grant = googleOf(result.body);
    assert.deepEqual(grant.scopes, [SPANNER_DATA]);
    assert.equal(grant.serviceAccount, TARGET);
    assert.equal(grant.spannerDatabaseRole, 'migrator');
    assert.ok(gb.google.issued.has(grant.accessToken), 'the token is the one Google issued');
    const sent = lastRequest();
    assert.equal(sent?.serviceAccount, TARGET);
    assert.equal(sent?.caller, `serviceAccount:${gb.google.brokerServiceAccount}`);
    assert.deepEqual(sent?.body.scope, [SPANNER_DATA]);
    const records = await waitForAudit(gb.h, result.body.requestId as string);
    const minted = records.find((record) => record.phase === 'result')?.minted as Array<Record<string, unknown>>;
    const summary = minted.find((item) => item.kind === 'google');
    assert.equal(summary?.spannerDatabaseRole, 'migrator');
    assert.equal(summary?.sha256, createHash('sha256').update(grant.accessToken).digest('hex'));
    await assertTokenNotLogged(gb.h, grant.accessToken);
  });

  it('asks for all of the rule\'s scopes when the request names none', async () => {
    const result = await gb.h.exchange(await token(), { google: {} });
    assert.equal(result.status, 200, result.text);
    assert.deepEqual(lastRequest()?.body.scope, [SPANNER_ADMIN, SPANNER_DATA]);
  });

  it('refuses a scope the rule does not list with 403 grant_not_allowed, without calling Google', async () => {
    const calls = gb.google.calls.generateAccessToken;
    const idToken = await token();
    const result = await gb.h.exchange(idToken, { google: { scopes: [SPANNER_ADMIN, 'https://www.googleapis.com/auth/cloud-platform'] } });
    await assertDenied(gb.h, result, 403, 'grant_not_allowed', idToken);
    assert.equal(gb.google.calls.generateAccessToken, calls);
  });

  describe('lifetime', () => {
    const cases = [
      { name: 'the rule\'s 15 minutes', claims: { environment: 'production', exp: nowSeconds() + 3000 }, min: 900, max: 900 },
      { name: 'the ID token\'s remaining time', claims: { environment: 'production', exp: nowSeconds() + 300 }, min: 280, max: 300 },
      { name: 'one hour for a rule of one hour and an ID token of two', claims: { environment: 'long', exp: nowSeconds() + 7000 }, min: 3600, max: 3600 },
    ];
    for (const c of cases) {
      it(`is clamped to ${c.name}`, async () => {
        const result = await gb.h.exchange(await token(c.claims), { google: {} });
        assert.equal(result.status, 200, result.text);
        const seconds = Number(/^(\d+)s$/.exec(String(lastRequest()?.body.lifetime))?.[1]);
        assert.ok(seconds >= c.min && seconds <= c.max, `asked Google for ${seconds}s`);
        const expiresIn = (Date.parse(googleOf(result.body).expiresAt) - Date.now()) / 1000;
        assert.ok(expiresIn <= c.max + 1, `expires in ${expiresIn}s`);
      });
    }

    it('refuses a policy whose rule asks for more than an hour', () => {
      const yaml = `version: 1\nrules:\n  - name: too-long\n    when: { project_id: "20" }\n    grant:\n      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}], lifetime: 2h }\n`;
      assert.throws(() => compilePolicy([{ source: 'policy.yaml', data: parse(yaml) }]), (err: unknown) => err instanceof PolicyError && /lifetime/.test(err.message));
    });
  });

  it('impersonates through the rule\'s delegates', async () => {
    const result = await gb.h.exchange(await token({ environment: 'delegated' }), { google: {} });
    assert.equal(result.status, 200, result.text);
    assert.equal(googleOf(result.body).serviceAccount, DELEGATED_TARGET);
    assert.deepEqual(lastRequest()?.body.delegates, [`projects/-/serviceAccounts/${DELEGATE}`]);
  });

  describe('when Google refuses', () => {
    const cases = [
      { name: 'a service account the broker may not impersonate', environment: 'unbound', hint: `roles/iam.serviceAccountTokenCreator on ${UNBOUND} for oidc-broker@broker-project.iam.gserviceaccount.com` },
      { name: 'a service account that does not exist', environment: 'missing', hint: `found no service account ${MISSING}` },
    ];
    for (const c of cases) {
      it(`answers 503 upstream_unavailable naming the fix for ${c.name}`, async () => {
        const idToken = await token({ environment: c.environment });
        const result = await gb.h.exchange(idToken, { google: {} });
        await assertDenied(gb.h, result, 503, 'upstream_unavailable', idToken);
        assert.ok(String(result.body.detail).includes(c.hint), String(result.body.detail));
        const denied = (await waitForAudit(gb.h, result.body.requestId as string)).find((record) => record.phase === 'denied');
        assert.ok(String(denied?.detail).includes(c.hint), 'the audit record carries the operator hint');
      });
    }
  });

  describe('transient failures', () => {
    it('retries 503 and 429 with jitter and then succeeds', async () => {
      const calls = gb.google.calls.generateAccessToken;
      gb.google.faults.generateAccessToken.push(503, 429);
      const result = await gb.h.exchange(await token(), { google: {} });
      assert.equal(result.status, 200, result.text);
      assert.equal(gb.google.calls.generateAccessToken - calls, 3);
    });

    it('answers 503 once the attempts are spent', async () => {
      const calls = gb.google.calls.generateAccessToken;
      gb.google.faults.generateAccessToken.push(500, 502, 503, 500);
      const idToken = await token();
      const result = await gb.h.exchange(idToken, { google: {} });
      await assertDenied(gb.h, result, 503, 'upstream_unavailable', idToken);
      assert.equal(gb.google.calls.generateAccessToken - calls, 4);
      assert.match(String(result.body.detail), /kept failing/);
    });

    it('answers 503 within the request\'s deadline when Google never answers', async () => {
      gb.google.faults.generateAccessToken.push('hang', 'hang', 'hang', 'hang');
      const started = Date.now();
      const idToken = await token();
      const result = await gb.h.exchange(idToken, { google: {} });
      await assertDenied(gb.h, result, 503, 'upstream_unavailable', idToken);
      assert.match(String(result.body.detail), /before the deadline/);
      // limits.factTimeout is 2 s here; the bound is loose because the machine is shared, but far below "hangs".
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    });
  });

  it('returns nothing when Google fails after the other grants were minted, and the same ID token works afterwards', async () => {
    const idToken = await token();
    const grants = () => ({ google: {}, linkerd: { csr: generateKeyAndRequest().csrPem }, token: {} });
    gb.google.faults.generateAccessToken.push(403);
    const failed = await gb.h.exchange(idToken, grants());
    await assertDenied(gb.h, failed, 503, 'upstream_unavailable', idToken);
    const records = await waitForAudit(gb.h, failed.body.requestId as string);
    assert.deepEqual(records.map((record) => record.phase).sort(), ['denied', 'intent']);
    const retried = await gb.h.exchange(idToken, grants());
    assert.equal(retried.status, 200, retried.text);
    assert.deepEqual(Object.keys(retried.body.grants as object).sort(), ['google', 'linkerd', 'token']);
    const again = await gb.h.exchange(idToken, grants());
    await assertDenied(gb.h, again, 409, 'token_replayed', idToken);
  });

  it('never writes a minted access token to a log line or an audit record', async () => {
    const minted: string[] = [];
    for (const scopes of [[SPANNER_ADMIN], [SPANNER_DATA]]) {
      const result = await gb.h.exchange(await token(), { google: { scopes } });
      assert.equal(result.status, 200, result.text);
      minted.push(googleOf(result.body).accessToken);
    }
    const audit = await gb.h.auditText();
    for (const accessToken of [...minted, ...gb.google.issued]) {
      assert.ok(!audit.includes(accessToken), 'an access token appears in the audit log');
      assert.ok(!gb.h.opsLog.some((line) => line.includes(accessToken)), 'an access token appears in the operational log');
    }
    for (const accessToken of minted) assert.ok(audit.includes(createHash('sha256').update(accessToken).digest('hex')));
  });
});
