/**
 * Approval gating through POST /v1/exchange: the stand-in GitLab answers deployments, merge requests, approvals and
 * group membership as GitLab documents them; each denial names what is missing, is audited and mints nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertDenied } from './support/assertions.js';
import {
  deploymentOfAnotherJob,
  fullyApproved,
  rejectedDeployment,
  selfApprovedMergeRequest,
  staleMergeRequestApproval,
  approvalData,
  deploymentOf,
  mergeRequestOf,
} from './support/approval-scenarios.js';
import { startApprovalsBroker, type ApprovalsBroker } from './support/approvals-broker.js';
import type { ApprovalsApiData } from './support/gitlab-approvals-api.js';

let broker: ApprovalsBroker;
const withDeployment = (data: ApprovalsApiData): ApprovalsApiData => ({ ...data, deployments: [deploymentOf()] });

before(async () => {
  broker = await startApprovalsBroker();
});
after(() => broker.close());

describe('approval gating through /v1/exchange', () => {
  it('mints when both kinds of approval hold, and names the approvers in the response and the audit log', async () => {
    broker.answer(fullyApproved());
    const result = await broker.h.exchange(await broker.idToken());
    assert.equal(result.status, 200, result.text);
    const approvals = result.body.approvals as { deployment: Array<{ user: string }>; mergeRequest: { iid: number; approvedBy: string[] } };
    assert.deepEqual(approvals.deployment.map((approver) => approver.user), ['bob']);
    assert.equal(approvals.mergeRequest.iid, 42);
    assert.deepEqual([...approvals.mergeRequest.approvedBy].sort(), ['carol', 'dave']);
    const records = (await broker.h.auditRecords()).filter((record) => record.requestId === result.body.requestId);
    assert.ok(records.every((record) => JSON.stringify(record.approvals).includes('carol')));
  });

  const denials: Array<{ name: string; data: () => ApprovalsApiData; detail: RegExp }> = [
    { name: 'the only MR approver is its author', data: () => withDeployment(selfApprovedMergeRequest()), detail: /erin/ },
    { name: 'an MR approval older than the newest push', data: () => withDeployment(staleMergeRequestApproval()), detail: /carol/ },
    { name: 'a rejected deployment approval', data: rejectedDeployment, detail: /reject/i },
    { name: 'a deployment approval for another job', data: deploymentOfAnotherJob, detail: /: no deployment to production for job 302$/ },
    { name: 'no merge request at all', data: () => approvalData({ deployments: [deploymentOf()] }), detail: /merge request/i },
    { name: 'an MR merged into another branch', data: () => approvalData({ deployments: [deploymentOf()], mergeRequests: [mergeRequestOf({ target_branch: 'develop' })] }), detail: /: merge request !42 was merged into refs\/heads\/develop, not refs\/heads\/main$/ },
  ];
  for (const testCase of denials) {
    it(`denies with approval_required when ${testCase.name}`, async () => {
      broker.answer(testCase.data());
      const token = await broker.idToken();
      const result = await broker.h.exchange(token);
      await assertDenied(broker.h, result, 403, 'approval_required', token);
      assert.match(String(result.body.detail), testCase.detail);
      const reasons = result.body.reasons as Array<{ name: string }>;
      assert.ok(reasons.some((reason) => /Approvals$/.test(reason.name)), JSON.stringify(reasons));
    });
  }

  const faults: Array<{ name: string; mode: 'down' | '429' | 'html' | '500' | 'redirect' }> = [
    { name: 'the API is down', mode: 'down' },
    { name: 'the API answers 429', mode: '429' },
    { name: 'the API answers an HTML page', mode: 'html' },
    { name: 'the API answers 500', mode: '500' },
    { name: 'the API redirects to another host', mode: 'redirect' },
  ];
  for (const fault of faults) {
    it(`fails closed with 503 upstream_unavailable when ${fault.name}`, async () => {
      broker.answer(fullyApproved());
      broker.api.faults.mode = fault.mode;
      try {
        const token = await broker.idToken();
        await assertDenied(broker.h, await broker.h.exchange(token), 503, 'upstream_unavailable', token);
      } finally {
        broker.api.faults.mode = 'none';
      }
    });
  }

  it('fails closed when the API is slower than the deadline', async () => {
    broker.answer(fullyApproved());
    broker.api.faults.delayMs = 2500;
    try {
      const token = await broker.idToken();
      await assertDenied(broker.h, await broker.h.exchange(token), 503, 'upstream_unavailable', token);
    } finally {
      broker.api.faults.delayMs = 0;
    }
  });

  it('never caches an approval across requests: a revoked approval denies the next exchange', async () => {
    broker.answer(fullyApproved());
    assert.equal((await broker.h.exchange(await broker.idToken())).status, 200);
    broker.answer(withDeployment(selfApprovedMergeRequest()));
    const token = await broker.idToken();
    await assertDenied(broker.h, await broker.h.exchange(token), 403, 'approval_required', token);
  });

  it('explain shows the approval requirement without minting', async () => {
    broker.answer(withDeployment(selfApprovedMergeRequest()));
    const result = await broker.h.call('/v1/explain', { token: await broker.idToken(), body: { grants: { token: {} } } });
    assert.equal(result.status, 200);
    assert.equal(result.body.allowed, false);
    assert.equal(result.body.code, 'approval_required');
    const evaluation = (result.body.evaluations as Array<{ requirements: Array<{ name: string; ok: boolean }> }>)[0];
    assert.ok(evaluation?.requirements.some((requirement) => requirement.name === 'mergeRequestApprovals' && !requirement.ok));
  });
});
