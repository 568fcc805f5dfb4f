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
    assert.deepEqual(result.body.checks, { policy: true, issuers: true, replay: true, audit: true });
  });

  it('/metrics counts requests by result code and rule and has a latency histogram', async () => {
    await h.exchange(await h.gitlab.token(AUDIENCE));
    await h.exchange(await h.gitlab.token(AUDIENCE, { project_id: '404' }));
    const text = (await h.call('/metrics')).text;
    assert.match(text, /oidc_broker_requests_total\{endpoint="\/v1\/exchange",code="ok",rule="payments-deploy-production"\} [1-9]/);
    assert.match(text, /oidc_broker_requests_total\{endpoint="\/v1\/exchange",code="policy_denied",rule=""\} [1-9]/);
    assert.match(text, /oidc_broker_request_duration_seconds_bucket\{le="0.01",endpoint="\/v1\/exchange"\}/);
  });

  it('echoes a well-formed X-Request-Id and replaces a hostile one', async () => {
    assert.equal((await h.call('/healthz', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id'), 'abc-123');
    assert.notEqual((await h.call('/healthz', { headers: { 'x-request-id': 'a b\u00e9' } })).headers.get('x-request-id'), 'a b\u00e9');
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
