/** Health, readiness and metrics endpoints, and the audit record a denial leaves. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(() => h.close());

describe('operations endpoints', () => {
  it('/healthz answers while the process lives', async () => {
    assert.deepEqual((await h.call('/healthz')).body, { status: 'ok' });
  });

  it('/readyz names each check', async () => {
    const result = await h.call('/readyz');
    assert.equal(result.status, 200);
    assert.deepEqual(result.body.checks, { accepting: true, policy: true, issuers: true, replay: true, audit: true });
  });

  it('/metrics counts requests by result code and rule and has a latency histogram', async () => {
    await h.exchange(await h.gitlab.token(AUDIENCE));
    await h.exchange(await h.gitlab.token(AUDIENCE, { project_id: '404' }));
    const text = (await h.call('/metrics')).text;
    assert.match(text, /oidc_broker_requests_total\{endpoint="\/v1\/exchange",code="ok",rule="payments-deploy-production"\} [1-9]/);
    assert.match(text, /oidc_broker_requests_total\{endpoint="\/v1\/exchange",code="policy_denied",rule=""\} [1-9]/);
    assert.match(text, /oidc_broker_request_duration_seconds_bucket\{le="0.01",endpoint="\/v1\/exchange"\}/);
  });

  it('always uses its own request id, so callers cannot make audit records collide', async () => {
    const answered = (await h.call('/healthz', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id');
    assert.match(answered ?? '', /^[0-9a-f-]{36}$/);
  });

  it('answers headers beyond the server limit with 413 problem+json, not a bare 431', async () => {
    const result = await h.call('/v1/exchange', { token: 'a'.repeat(70 * 1024), body: { grants: { token: {} } } });
    assert.equal(result.status, 413);
    assert.equal(result.body.code, 'payload_too_large');
  });

  it('has no case or trailing-slash aliases of the exchange route', async () => {
    for (const path of ['/V1/Exchange', '/v1/exchange/']) {
      const result = await h.call(path, { token: 'x', body: { grants: { token: {} } } });
      assert.equal(result.status, 404, path);
    }
  });
});

describe('audit records', () => {
  it('a denial names the project, pipeline, job, user, commit and the failed conditions', async () => {
    const result = await h.exchange(await h.gitlab.token(AUDIENCE, { environment: 'staging' }));
    const [record] = (await h.auditRecords()).filter((entry) => entry.requestId === result.body.requestId);
    assert.ok(record);
    for (const [field, value] of Object.entries({ project_id: '20', project_path: 'payments/api', pipeline_id: '574', job_id: '302', user_login: 'alice', sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', environment: 'staging', code: 'policy_denied', phase: 'denied', issuer: h.gitlab.issuer })) {
      assert.equal(record[field], value, field);
    }
    assert.match(String(record.tokenSha256), /^[0-9a-f]{64}$/);
    assert.ok(Array.isArray(record.reasons) && record.reasons.length > 0);
  });
});
