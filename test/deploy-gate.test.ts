/**
 * The deploy gate can pass a rule that requires deployment approvals: its verify job has no deployment, so explain
 * (asked with ?defer=deploymentApprovals) leaves that requirement to the deploy job's exchange and judges the rest.
 * The broker runs for real against the stand-in GitLab; `oidc-broker gate` runs as a child process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { judgeGate } from '../src/cli/gate-verdict.js';
import { approvalData, deploymentOf, mergeRequestOf, selfApprovedMergeRequest } from './support/approval-scenarios.js';
import { startApprovalsBroker, type ApprovalsBroker } from './support/approvals-broker.js';
import { runCli } from './support/cli-run.js';
import type { ApprovalsApiData } from './support/gitlab-approvals-api.js';

let broker: ApprovalsBroker;
/** A verify job: GitLab made no deployment for it; the MR that brought the commit is approved. */
const verifyJob = (): ApprovalsApiData => approvalData({ mergeRequests: [mergeRequestOf()] });
const BODY = { grants: { token: {} } };
const gate = (token: string, ...extra: string[]) => runCli(['gate', '--broker', broker.h.url, '--grant', 'token', ...extra], { BROKER_ID_TOKEN: token });

before(async () => {
  broker = await startApprovalsBroker(verifyJob());
});
after(() => broker.close());

describe('explain for a deploy gate', () => {
  it('without ?defer=, a verify job fails deployment approvals: there is no deployment for it', async () => {
    broker.answer(verifyJob());
    const result = await broker.h.call('/v1/explain', { token: await broker.idToken(), body: BODY });
    assert.equal(result.body.allowed, false);
    assert.equal(result.body.code, 'approval_required');
    assert.match(JSON.stringify(result.body.evaluations), /no deployment to production for job 302/);
  });

  it('with ?defer=deploymentApprovals, allows on the rest and marks deployment approvals as checked later, without asking GitLab for deployments', async () => {
    broker.answer(verifyJob());
    broker.api.calls.length = 0;
    const result = await broker.h.call('/v1/explain?defer=deploymentApprovals', { token: await broker.idToken(), body: BODY });
    assert.equal(result.status, 200, result.text);
    assert.equal(result.body.allowed, true);
    const [evaluation] = result.body.evaluations as Array<{ requirements: Array<{ name: string; ok: boolean; deferred?: boolean; detail: string }> }>;
    const deployment = evaluation?.requirements.find((requirement) => requirement.name === 'deploymentApprovals');
    assert.equal(deployment?.deferred, true);
    assert.match(String(deployment?.detail), /checked when the deploy job runs/);
    assert.ok(evaluation?.requirements.some((requirement) => requirement.name === 'mergeRequestApprovals' && requirement.ok && !requirement.deferred));
    assert.deepEqual(broker.api.calls.filter((call) => call.includes('/deployments')), []);
  });

  it('still judges merge-request approvals early', async () => {
    broker.answer(selfApprovedMergeRequest());
    const result = await broker.h.call('/v1/explain?defer=deploymentApprovals', { token: await broker.idToken(), body: BODY });
    assert.equal(result.body.allowed, false);
    assert.equal(result.body.code, 'approval_required');
  });

  it('the exchange ignores ?defer=: no deployment approval, no credentials', async () => {
    broker.answer(verifyJob());
    const result = await broker.h.call('/v1/exchange?defer=deploymentApprovals', { token: await broker.idToken(), body: BODY });
    assert.equal(result.status, 403);
    assert.equal(result.body.code, 'approval_required');
    assert.equal(result.body.grants, undefined);
  });

  it('the deploy job with an approved deployment still exchanges', async () => {
    broker.answer(approvalData({ deployments: [deploymentOf()], mergeRequests: [mergeRequestOf()] }));
    assert.equal((await broker.h.exchange(await broker.idToken())).status, 200);
  });
});

describe('oidc-broker gate', () => {
  it('passes a rule that requires deployment approvals and says they are checked when the deploy job runs', async () => {
    broker.answer(verifyJob());
    const result = await gate(await broker.idToken());
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /allowed by rule payments-migrate-production/);
    assert.match(result.stdout, /deploymentApprovals: checked when the deploy job runs \(needs 1 from payments\/release\)/);
  });

  it('fails with exit 1 and the reason when merge-request approvals are missing', async () => {
    broker.answer(selfApprovedMergeRequest());
    const result = await gate(await broker.idToken());
    assert.equal(result.code, 1);
    assert.match(result.stderr, /mergeRequestApprovals/);
    assert.match(result.stderr, /erin/);
  });

  it('--json prints the verdict for scripts', async () => {
    broker.answer(verifyJob());
    const result = await gate(await broker.idToken(), '--json');
    assert.equal(result.code, 0, result.stderr);
    const verdict = JSON.parse(result.stdout) as { pass: boolean; rule: string; deferred: string[] };
    assert.equal(verdict.pass, true);
    assert.equal(verdict.rule, 'payments-migrate-production');
    assert.equal(verdict.deferred.length, 1);
  });
});

describe('judgeGate on an answer from a broker that does not know ?defer=', () => {
  const evaluation = (requirements: object[], grants: object[] = [{ name: 'token', ok: true, detail: '' }]) => ({
    allowed: false, rule: null, code: 'approval_required',
    evaluations: [{ rule: 'r', applies: true, conditions: [], requirements, grants }],
  });

  it('passes when the only failure is deployment approvals, and says so', () => {
    const verdict = judgeGate(evaluation([{ name: 'jobRunning', ok: true, detail: 'job status is running' }, { name: 'deploymentApprovals', ok: false, detail: 'no deployment to production for job 302' }]));
    assert.equal(verdict.pass, true);
    assert.equal(verdict.rule, 'r');
    assert.match(verdict.deferred[0] ?? '', /checked when the deploy job runs.*no deployment/);
  });

  for (const [name, value] of [
    ['another requirement fails too', evaluation([{ name: 'deploymentApprovals', ok: false, detail: '' }, { name: 'jobRunning', ok: false, detail: 'job status is failed' }])],
    ['a grant is not allowed', evaluation([{ name: 'deploymentApprovals', ok: false, detail: '' }], [{ name: 'token', ok: false, detail: 'audience not allowed' }])],
    ['no rule applies', { allowed: false, evaluations: [{ rule: 'r', applies: false, conditions: [], requirements: [], grants: [] }] }],
  ] as const) {
    it(`fails when ${name}`, () => assert.equal(judgeGate(value as Record<string, unknown>).pass, false));
  }
});
