/**
 * POST /v1/refresh with the session of an exchange: fresh google (and, with a new CSR, linkerd) grants while the job
 * runs and its approvals hold; never more than the exchange granted; tied to the exchange in the audit log.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { SESSION_TYPE } from '../src/core/session.js';
import { approvalData, deploymentOf, fullyApproved, mergeRequestOf } from './support/approval-scenarios.js';
import { startApprovalsGitLab, type ApprovalsGitLab } from './support/approvals-broker.js';
import { assertDenied, waitForAudit } from './support/assertions.js';
import { SPANNER_ADMIN, SPANNER_DATA, startGoogleBroker, TARGET, type GoogleBroker } from './support/google-broker.js';
import { AUDIENCE } from './support/policies.js';

const POLICY = `
version: 1
rules:
  - name: spanner-backfill
    when: { project_id: "20", ref_path: refs/heads/main, environment: production }
    require:
      deploymentApprovals: { min: 1, fromGroups: [payments/release] }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}, ${SPANNER_DATA}], lifetime: 15m }
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 10m }
      token: { audiences: [https://deploy-api.internal] }
  - name: review-no-job-check
    when: { project_id: "20", environment: review }
    require: { jobRunning: false }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_DATA}], lifetime: 15m }
`;

let approvals: ApprovalsGitLab;
let gb: GoogleBroker;

before(async () => {
  approvals = await startApprovalsGitLab();
  gb = await startGoogleBroker({ gitlab: approvals.gitlab, policy: POLICY });
});
after(async () => {
  await gb.close();
  await approvals.close();
});
beforeEach(() => {
  approvals.answer(fullyApproved());
  approvals.gitlab.setJob('20', '302', 'running');
  gb.resetFaults();
});

const idToken = (overrides: Record<string, unknown> = {}) => approvals.idToken(overrides);
type Session = { token: string; expiresAt: string };

/** An exchange for google with `scopes`; returns its requestId, session and access token. */
async function opened(grants: object = { google: { scopes: [SPANNER_DATA] } }, claims: Record<string, unknown> = {}): Promise<{ requestId: string; session: Session; accessToken: string; exp: number }> {
  const token = await idToken(claims);
  const result = await gb.h.exchange(token, grants);
  assert.equal(result.status, 200, result.text);
  const google = (result.body.grants as { google?: { accessToken: string } }).google;
  return { requestId: result.body.requestId as string, session: result.body.session as Session, accessToken: google?.accessToken ?? '', exp: decodeJwt(token).exp as number };
}

const refresh = (session: string, grants: object) => gb.h.call('/v1/refresh', { token: session, body: { grants } });

describe('the refresh session', () => {
  it('is a broker token of its own type and audience, valid until the ID token expires', async () => {
    const { session, exp } = await opened();
    assert.equal(decodeProtectedHeader(session.token).typ, SESSION_TYPE);
    const claims = decodeJwt(session.token);
    assert.equal(claims.aud, `${AUDIENCE}/v1/refresh`);
    assert.equal(claims.exp, exp);
    assert.equal(Date.parse(session.expiresAt), exp * 1000);
  });

  it('mints a fresh google token with the scopes the exchange granted, as often as asked, tied to the exchange in the audit log', async () => {
    const { requestId, session, accessToken } = await opened();
    const seen = new Set([accessToken]);
    for (let i = 0; i < 2; i += 1) {
      const result = await refresh(session.token, { google: {} });
      assert.equal(result.status, 200, result.text);
      const google = (result.body.grants as { google: { accessToken: string; scopes: string[] } }).google;
      assert.deepEqual(google.scopes, [SPANNER_DATA], 'the default is what the exchange granted, not all of the rule\'s scopes');
      assert.ok(!seen.has(google.accessToken), 'a fresh token');
      seen.add(google.accessToken);
      assert.deepEqual(gb.google.generateRequests.at(-1)?.body.scope, [SPANNER_DATA]);
      const records = await waitForAudit(gb.h, result.body.requestId as string);
      assert.ok(records.some((record) => record.phase === 'result'));
      for (const record of records) {
        assert.equal(record.event, 'refresh');
        assert.equal(record.originalRequestId, requestId);
      }
      assert.ok(!(await gb.h.auditText()).includes(google.accessToken), 'the access token is not in the audit log');
    }
  });

  it('mints a linkerd certificate for a new CSR when the exchange granted linkerd', async () => {
    const { session } = await opened({ google: {}, linkerd: { csr: generateKeyAndRequest().csrPem } });
    const result = await refresh(session.token, { linkerd: { csr: generateKeyAndRequest().csrPem } });
    assert.equal(result.status, 200, result.text);
    assert.match((result.body.grants as { linkerd: { certificate: string } }).linkerd.certificate, /BEGIN CERTIFICATE/);
  });

  describe('never grants more than the exchange did', () => {
    const cases = [
      { name: 'a scope the exchange did not grant (though the rule allows it)', grants: { google: { scopes: [SPANNER_ADMIN] } }, detail: /did not grant the scopes .*spanner\.admin/ },
      { name: 'a kind the exchange did not grant (though the rule allows it)', grants: { token: {} }, detail: /did not grant token/ },
      { name: 'a kind and a granted one together', grants: { google: {}, linkerd: { csr: generateKeyAndRequest().csrPem } }, detail: /did not grant linkerd/ },
    ];
    for (const c of cases) {
      it(`refuses ${c.name} with 403 grant_not_allowed and mints nothing`, async () => {
        const { session } = await opened();
        const calls = gb.google.calls.generateAccessToken;
        const result = await refresh(session.token, c.grants);
        await assertDenied(gb.h, result, 403, 'grant_not_allowed', session.token);
        assert.match(String(result.body.detail), c.detail);
        assert.equal(gb.google.calls.generateAccessToken, calls);
      });
    }
  });

  it('stops once the job has finished: 403 job_not_running', async () => {
    const { session } = await opened();
    assert.equal((await refresh(session.token, { google: {} })).status, 200, 'while the job runs');
    approvals.gitlab.setJob('20', '302', 'success');
    const result = await refresh(session.token, { google: {} });
    await assertDenied(gb.h, result, 403, 'job_not_running', session.token);
  });

  it('stops once the job has finished even under a rule that does not check the job on exchange', async () => {
    const { session } = await opened({ google: {} }, { environment: 'review' });
    assert.equal((await refresh(session.token, { google: {} })).status, 200, 'while the job runs');
    approvals.gitlab.setJob('20', '302', 'failed');
    await assertDenied(gb.h, await refresh(session.token, { google: {} }), 403, 'job_not_running', session.token);
  });

  it('stops when the deployment approval is withdrawn: 403 approval_required', async () => {
    const { session } = await opened();
    approvals.answer(approvalData({ deployments: [deploymentOf({ approvals: [] })], mergeRequests: [mergeRequestOf()] }));
    const result = await refresh(session.token, { google: {} });
    await assertDenied(gb.h, result, 403, 'approval_required', session.token);
  });

  it('ends when the ID token would have: 401 token_expired', async () => {
    const exp = Math.floor(Date.now() / 1000) + 4;
    const { session } = await opened({ google: {} }, { exp });
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 + 1100 - Date.now()));
    await assertDenied(gb.h, await refresh(session.token, { google: {} }), 401, 'token_expired', session.token);
  });

  it('is accepted nowhere else, and nothing else is accepted as a session', async () => {
    const { session } = await opened({ google: {}, token: {} });
    await assertDenied(gb.h, await gb.h.exchange(session.token, { google: {} }), 401, 'invalid_token');
    const exchanged = await gb.h.exchange(await idToken(), { token: {} });
    const brokerJwt = (exchanged.body.grants as { token: { token: string } }).token.token;
    await assertDenied(gb.h, await refresh(brokerJwt, { google: {} }), 401, 'invalid_token', brokerJwt);
    const fresh = await idToken();
    await assertDenied(gb.h, await refresh(fresh, { google: {} }), 401, 'invalid_token', fresh);
    const tampered = `${session.token.slice(0, -4)}AAAA`;
    await assertDenied(gb.h, await refresh(tampered, { google: {} }), 401, 'invalid_token');
  });
});
