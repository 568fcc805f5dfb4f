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
  scenarioClaims,
  selfApprovedMergeRequest,
  staleMergeRequestApproval,
  approvalData,
  deploymentOf,
  mergeRequestOf,
} from './support/approval-scenarios.js';
import { mountApprovalsApi, type ApprovalsApiData, type ApprovalsApiHandle } from './support/gitlab-approvals-api.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const POLICY = `
version: 1
rules:
  - name: payments-migrate-production
    when:
      project_id: "20"
      ref_path: refs/heads/main
      ref_protected: "true"
      environment: production
    require:
      deploymentApprovals: { min: 1, fromGroups: [payments/release] }
      mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers], fresh: true }
    grant:
      token: { audiences: [https://deploy-api.internal] }
`;

let gitlab: StandInGitLab;
let api: ApprovalsApiHandle;
let h: Harness;

const withToken = (data: ApprovalsApiData): ApprovalsApiData => ({ ...data, token: API_TOKEN });
const withDeployment = (data: ApprovalsApiData): ApprovalsApiData => ({ ...data, deployments: [deploymentOf()] });

before(async () => {
  gitlab = await startGitLab({ extraRoutes: (router) => (api = mountApprovalsApi(router, withToken(fullyApproved()))) });
  h = await startHarness({ gitlab, policy: POLICY });
});
after(async () => {
  await h.close();
  await gitlab.close();
});

const scenarioToken = () => gitlab.token(AUDIENCE, { ...scenarioClaims(), ci_config_ref_uri: null });

describe('approval gating through /v1/exchange', () => {
  it('mints when both kinds of approval hold, and names the approvers in the response and the audit log', async () => {
    api.setData(withToken(fullyApproved()));
    const result = await h.exchange(await scenarioToken());
    assert.equal(result.status, 200, result.text);
    const approvals = result.body.approvals as { deployment: Array<{ user: string }>; mergeRequest: { iid: number; approvedBy: string[] } };
    assert.deepEqual(approvals.deployment.map((approver) => approver.user), ['bob']);
    assert.equal(approvals.mergeRequest.iid, 42);
    assert.deepEqual([...approvals.mergeRequest.approvedBy].sort(), ['carol', 'dave']);
    const records = (await h.auditRecords()).filter((record) => record.requestId === result.body.requestId);
    assert.ok(records.every((record) => JSON.stringify(record.approvals).includes('carol')));
  });

  const denials: Array<{ name: string; data: () => ApprovalsApiData; detail: RegExp }> = [
    { name: 'the only MR approver is its author', data: () => withDeployment(selfApprovedMergeRequest()), detail: /erin/ },
    { name: 'an MR approval older than the newest push', data: () => withDeployment(staleMergeRequestApproval()), detail: /carol/ },
    { name: 'a rejected deployment approval', data: rejectedDeployment, detail: /reject/i },
    { name: 'a deployment approval for another job', data: deploymentOfAnotherJob, detail: /.+/ },
    { name: 'no merge request at all', data: () => approvalData({ deployments: [deploymentOf()] }), detail: /merge request/i },
    { name: 'an MR merged into another branch', data: () => approvalData({ deployments: [deploymentOf()], mergeRequests: [mergeRequestOf({ target_branch: 'develop' })] }), detail: /.+/ },
  ];
  for (const testCase of denials) {
    it(`denies with approval_required when ${testCase.name}`, async () => {
      api.setData(withToken(testCase.data()));
      const token = await scenarioToken();
      const result = await h.exchange(token);
      await assertDenied(h, result, 403, 'approval_required', token);
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
      api.setData(withToken(fullyApproved()));
      api.faults.mode = fault.mode;
      try {
        const token = await scenarioToken();
        await assertDenied(h, await h.exchange(token), 503, 'upstream_unavailable', token);
      } finally {
        api.faults.mode = 'none';
      }
    });
  }

  it('fails closed when the API is slower than the deadline', async () => {
    api.setData(withToken(fullyApproved()));
    api.faults.delayMs = 2500;
    try {
      const token = await scenarioToken();
      await assertDenied(h, await h.exchange(token), 503, 'upstream_unavailable', token);
    } finally {
      api.faults.delayMs = 0;
    }
  });

  it('never caches an approval across requests: a revoked approval denies the next exchange', async () => {
    api.setData(withToken(fullyApproved()));
    assert.equal((await h.exchange(await scenarioToken())).status, 200);
    api.setData(withToken(withDeployment(selfApprovedMergeRequest())));
    const token = await scenarioToken();
    await assertDenied(h, await h.exchange(token), 403, 'approval_required', token);
  });

  it('explain shows the approval requirement without minting', async () => {
    api.setData(withToken(withDeployment(selfApprovedMergeRequest())));
    const result = await h.call('/v1/explain', { token: await scenarioToken(), body: { grants: { token: {} } } });
    assert.equal(result.status, 200);
    assert.equal(result.body.allowed, false);
    assert.equal(result.body.code, 'approval_required');
    const evaluation = (result.body.evaluations as Array<{ requirements: Array<{ name: string; ok: boolean }> }>)[0];
    assert.ok(evaluation?.requirements.some((requirement) => requirement.name === 'mergeRequestApprovals' && !requirement.ok));
  });
});
