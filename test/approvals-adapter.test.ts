/** The GitLab approvals adapter against the stand-in API: what it fetches, pagination, and what it never caches. */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createGitLabClient, type GitLabClient } from '../src/adapters/gitlab/client.js';
import { evaluateDeploymentApprovals, evaluateMergeRequestApprovals } from '../src/core/approvals.js';
import type { FactNeeds } from '../src/core/policy/evaluate.js';
import { deploymentApprovalsSchema, mergeRequestApprovalsSchema } from '../src/core/policy/schema.js';
import {
  GROUPS, SCENARIO, USERS, approvalData, deploymentOf, fullyApproved, mergeRequestOf, scenarioPrincipal,
} from './support/approval-scenarios.js';
import { startApprovalsServer, type ApprovalsServer } from './support/approvals-server.js';

const BOTH: FactNeeds = { jobStatus: false, deploymentApprovals: true, mergeRequestApprovals: true, groups: [GROUPS.release, GROUPS.reviewers] };
const NOW = new Date('2025-06-01T13:00:00.000Z');
const deploySpec = deploymentApprovalsSchema.parse({ min: 1, fromGroups: [GROUPS.release] });
const mrSpec = mergeRequestApprovalsSchema.parse({ min: 2, fromGroups: [GROUPS.reviewers] });

const clients: GitLabClient[] = [];
after(() => Promise.all(clients.map((client) => client.close())));

function source(options: { membershipTtlMs?: number } = {}): GitLabClient {
  const client = createGitLabClient({ token: async () => SCENARIO.token, requestTimeoutMs: 2000, ...options });
  clients.push(client);
  return client;
}

describe('GitLab approvals adapter', () => {
  let server: ApprovalsServer;
  before(async () => {
    server = await startApprovalsServer(fullyApproved());
  });
  after(() => server.close());

  it('fetches the job deployment, the merged MR and the approvers group memberships', async () => {
    server.api.setData(fullyApproved());
    const principal = scenarioPrincipal();
    const facts = await source().approvals(server.issuer, principal, BOTH, AbortSignal.timeout(5000));
    assert.equal(facts.deployment?.deploymentId, 900);
    assert.deepEqual(facts.deployment?.approvals.map((entry) => entry.user.username), ['bob']);
    assert.equal(facts.mergeRequest?.iid, 42);
    assert.deepEqual(facts.mergeRequest?.approvals.map((entry) => entry.user.username), ['carol', 'dave']);
    assert.equal(facts.mergeRequest?.latestVersionAt, SCENARIO.lastPushAt);
    assert.deepEqual([...(facts.groupMembers?.get(GROUPS.release) ?? [])].sort(), ['2', '3']);
    assert.deepEqual([...(facts.groupMembers?.get(GROUPS.reviewers) ?? [])].sort(), ['3', '4']);
    assert.equal(evaluateDeploymentApprovals(deploySpec, principal, facts, NOW).ok, true);
    assert.equal(evaluateMergeRequestApprovals(mrSpec, principal, facts, NOW).ok, true);
    assert.ok(server.api.calls.some((call) => call.startsWith(`GET /groups/${encodeURIComponent(GROUPS.reviewers)}/members/all/3`)), 'group paths are URL-encoded');
  });

  it('asks for nothing when no candidate rule needs approvals', async () => {
    const before = server.api.calls.length;
    const facts = await source().approvals(server.issuer, scenarioPrincipal(), { ...BOTH, deploymentApprovals: false, mergeRequestApprovals: false }, AbortSignal.timeout(5000));
    assert.deepEqual(facts, {});
    assert.equal(server.api.calls.length, before);
  });

  it('reports no deployment when the only one in the environment belongs to another job', async () => {
    server.api.setData(approvalData({ deployments: [deploymentOf({ deployable: { ...deploymentOf().deployable, id: 303 } })] }));
    const facts = await source().approvals(server.issuer, scenarioPrincipal(), { ...BOTH, mergeRequestApprovals: false }, AbortSignal.timeout(5000));
    assert.equal(facts.deployment, null);
    assert.equal(facts.mergeRequest, undefined);
  });

  it('returns an MR merged into another branch without fetching its approvals', async () => {
    server.api.setData(approvalData({ mergeRequests: [mergeRequestOf({ target_branch: 'release' })] }));
    const before = server.api.calls.length;
    const principal = scenarioPrincipal();
    const facts = await source().approvals(server.issuer, principal, { ...BOTH, deploymentApprovals: false }, AbortSignal.timeout(5000));
    assert.equal(facts.mergeRequest?.targetBranch, 'release');
    assert.equal(server.api.calls.slice(before).filter((call) => call.includes('/approvals')).length, 0);
    assert.match(evaluateMergeRequestApprovals(mrSpec, principal, facts, NOW).detail, /merged into refs\/heads\/release/);
  });

  it('never caches approval results: a revoked approval is seen by the next request', async () => {
    const approvals = source();
    server.api.setData(fullyApproved());
    const principal = scenarioPrincipal();
    const first = await approvals.approvals(server.issuer, principal, BOTH, AbortSignal.timeout(5000));
    assert.equal(evaluateMergeRequestApprovals(mrSpec, principal, first, NOW).ok, true);
    server.api.setData(approvalData({ deployments: [deploymentOf({ approvals: [] })], mergeRequests: [mergeRequestOf({ approved_by: [mergeRequestOf().approved_by[0]!] })] }));
    const second = await approvals.approvals(server.issuer, principal, BOTH, AbortSignal.timeout(5000));
    assert.equal(evaluateMergeRequestApprovals(mrSpec, principal, second, NOW).ok, false);
    assert.equal(evaluateDeploymentApprovals(deploySpec, principal, second, NOW).ok, false);
  });
});

describe('GitLab approvals adapter pagination', () => {
  // Two records per page: the job's deployment, the MR, the committer and the newest version all sit on later pages.
  const others = [1, 2, 3, 4].map((n) => deploymentOf({ id: 900 + n, deployable: { ...deploymentOf().deployable, id: 400 + n } }));
  const openMrs = [7, 8, 9, 10].map((iid) => mergeRequestOf({ iid, state: 'opened', merge_commit_sha: null, target_branch: `topic-${iid}`, sha: SCENARIO.sha }));
  const commits = [1, 2, 3, 4, 5].map((n) => ({ id: `${n}`.repeat(40), author_name: 'Erin Author', author_email: 'erin@example.com' }));
  commits.push({ id: 'd'.repeat(40), author_name: 'Dave Reviewer', author_email: 'dave@laptop.local' }); // page 3
  const versions = [5, 4, 3, 2].map((n) => ({ id: n, head_commit_sha: 'e'.repeat(40), created_at: `2025-05-0${n}T00:00:00.000Z` }));
  versions.push({ id: 9, head_commit_sha: 'f'.repeat(40), created_at: '2025-06-01T10:40:00.000Z' }); // newest, on page 3
  const data = approvalData({
    deployments: [deploymentOf({ id: 890 }), ...others],
    mergeRequests: [...openMrs, mergeRequestOf({ commits, versions })],
  });

  const variants = [
    { name: 'follows Link rel="next" to pages 2 and 3', tweak: {} },
    { name: 'follows x-next-page when Link is absent', tweak: { omitLink: true } },
    { name: 'does not need x-total, which GitLab omits above 10,000 records', tweak: { hideTotals: true } },
  ];
  for (const variant of variants) {
    it(variant.name, async () => {
      const server = await startApprovalsServer({ ...data, maxPerPage: 2, ...variant.tweak });
      try {
        const principal = scenarioPrincipal();
        const facts = await source().approvals(server.issuer, principal, BOTH, AbortSignal.timeout(5000));
        assert.equal(facts.deployment?.deploymentId, 890);
        assert.equal(facts.mergeRequest?.iid, 42);
        assert.ok(facts.mergeRequest?.committers.some((identity) => identity.email === 'dave@laptop.local'));
        assert.equal(facts.mergeRequest?.latestVersionAt, '2025-06-01T10:40:00.000Z');
        // dave committed (page 3) and carol approved before the newest version (page 3): neither counts.
        const outcome = evaluateMergeRequestApprovals(mrSpec, principal, facts, NOW);
        assert.equal(outcome.ok, false);
        assert.match(outcome.detail, /carol \(approved before the last push\), dave \(committer\)/);
        for (const path of ['/deployments?', '/merge_requests?', '/commits?', '/versions?']) {
          assert.ok(server.api.calls.some((call) => call.includes(path) && call.includes('page=3')), `${path} page 3 fetched`);
        }
      } finally {
        await server.close();
      }
    });
  }

  it('prefers the merged MR into the token branch over open MRs holding the same commit', async () => {
    const server = await startApprovalsServer({ ...data, maxPerPage: 1 });
    try {
      const facts = await source().approvals(server.issuer, scenarioPrincipal(), { ...BOTH, deploymentApprovals: false }, AbortSignal.timeout(5000));
      assert.equal(facts.mergeRequest?.state, 'merged');
      assert.equal(facts.mergeRequest?.author.username, USERS.erin.username);
    } finally {
      await server.close();
    }
  });
});
