/**
 * Ready-made stand-in GitLab data for approval tests (unit, adapter and end-to-end through /v1/exchange). Every
 * scenario describes job 302 of pipeline 574 in project 20 (payments/api), deploying commit SCENARIO.sha from
 * refs/heads/main to production, triggered by alice. Policies to pair them with:
 *   deploymentApprovals: { min: 1, fromGroups: [payments/release] }           → met by `deploymentApproved()`
 *   mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers] }      → met by `mergeRequestApproved()`
 */
import type { GitLabPrincipal } from '../../src/core/claims.js';
import type { ApprovalsApiData, StandInDeployment, StandInMergeRequest, StandInUser } from './gitlab-approvals-api.js';
import { principalOf } from './principals.js';

export const SCENARIO = {
  token: 'glpat-stand-in-approvals-token',
  projectId: '20',
  projectPath: 'payments/api',
  jobId: '302',
  pipelineId: '574',
  sha: '714a7c0ffee0000000000000000000000000b0b0',
  refPath: 'refs/heads/main',
  environment: 'production',
  mergeRequestIid: 42,
  /** Time of the last push to MR !42; approvals after it are fresh. */
  lastPushAt: '2025-06-01T10:00:00.000Z',
} as const;

export const USERS = {
  alice: { id: 1, username: 'alice', name: 'Alice Triggerer' },
  bob: { id: 2, username: 'bob', name: 'Bob Release' },
  carol: { id: 3, username: 'carol', name: 'Carol Reviewer' },
  dave: { id: 4, username: 'dave', name: 'Dave Reviewer' },
  erin: { id: 5, username: 'erin', name: 'Erin Author' },
  frank: { id: 6, username: 'frank', name: 'Frank Outsider' },
  tokenBot: { id: 7, username: 'project_20_bot_5f2e', name: 'deploy token', bot: true },
  blocked: { id: 8, username: 'gone', name: 'Gone Person', state: 'blocked' },
} as const satisfies Record<string, StandInUser>;

export const GROUPS = { release: 'payments/release', reviewers: 'payments/reviewers' } as const;

/** The ID token claims these scenarios are about (add iss, aud, exp, … to sign one). */
export function scenarioClaims(): Record<string, string> {
  return {
    project_id: SCENARIO.projectId, project_path: SCENARIO.projectPath, job_project_id: SCENARIO.projectId,
    namespace_id: '9', namespace_path: 'payments', pipeline_id: SCENARIO.pipelineId, pipeline_source: 'push',
    job_id: SCENARIO.jobId, ref: 'main', ref_type: 'branch', ref_path: SCENARIO.refPath, ref_protected: 'true',
    sha: SCENARIO.sha, environment: SCENARIO.environment, environment_protected: 'true',
    user_id: String(USERS.alice.id), user_login: USERS.alice.username, user_email: 'alice@example.com',
  };
}

/** The verified principal of the scenario's job; `overrides` with an undefined value removes a claim. */
export function scenarioPrincipal(overrides: Record<string, string | undefined> = {}): GitLabPrincipal {
  const claims: Record<string, unknown> = {
    ...scenarioClaims(), sub: `project_path:${SCENARIO.projectPath}:ref_type:branch:ref:main`, jti: 'scenario-jti', exp: 2_000_000_000, iat: 1_700_000_000, nbf: null,
  };
  for (const [key, value] of Object.entries(overrides)) claims[key] = value ?? null;
  return principalOf(claims);
}

const GROUP_DATA = [
  { id: 100, full_path: GROUPS.release, members: [{ user: USERS.bob, access_level: 40 }, { user: USERS.carol, access_level: 30 }, { user: USERS.alice, access_level: 40 }] },
  { id: 101, full_path: GROUPS.reviewers, members: [{ user: USERS.carol, access_level: 30 }, { user: USERS.dave, access_level: 30 }, { user: USERS.erin, access_level: 30 }, { user: USERS.alice, access_level: 30 }] },
];

/** The deployment of job 302 to production, approved by bob (payments/release). */
export function deploymentOf(overrides: Partial<StandInDeployment> = {}): StandInDeployment {
  return {
    project: SCENARIO.projectId, id: 900, status: 'running', sha: SCENARIO.sha, ref: 'main', environment: SCENARIO.environment,
    deployable: { id: Number(SCENARIO.jobId), status: 'running', pipeline: { id: Number(SCENARIO.pipelineId), sha: SCENARIO.sha } },
    approvals: [{ user: USERS.bob, status: 'approved', created_at: '2025-06-01T11:00:00.000Z' }],
    pending_approval_count: 0,
    ...overrides,
  };
}

/** MR !42 by erin, merged into main as SCENARIO.sha, approved after the last push by carol and dave. */
export function mergeRequestOf(overrides: Partial<StandInMergeRequest> = {}): StandInMergeRequest {
  return {
    project: SCENARIO.projectId, iid: SCENARIO.mergeRequestIid, state: 'merged', merged_at: '2025-06-01T12:00:00.000Z',
    target_branch: 'main', sha: 'feed'.repeat(10), merge_commit_sha: SCENARIO.sha, squash_commit_sha: null, author: USERS.erin,
    commits: [{ id: 'feed'.repeat(10), author_name: USERS.erin.name, author_email: '5-erin@users.noreply.gitlab.example.com' }],
    approved_by: [
      { user: USERS.carol, approved_at: '2025-06-01T10:30:00.000Z' },
      { user: USERS.dave, approved_at: '2025-06-01T10:45:00.000Z' },
    ],
    versions: [
      { id: 2, head_commit_sha: 'feed'.repeat(10), created_at: SCENARIO.lastPushAt },
      { id: 1, head_commit_sha: 'beef'.repeat(10), created_at: '2025-05-31T09:00:00.000Z' },
    ],
    ...overrides,
  };
}

/** Stand-in data holding the given deployments and MRs, plus the users and the two groups. */
export function approvalData(parts: { deployments?: StandInDeployment[]; mergeRequests?: StandInMergeRequest[] } = {}): ApprovalsApiData {
  return { token: SCENARIO.token, users: Object.values(USERS), groups: GROUP_DATA, deployments: parts.deployments ?? [], mergeRequests: parts.mergeRequests ?? [] };
}

/** Deployment approved by bob: meets `deploymentApprovals: { min: 1, fromGroups: [payments/release] }`. */
export function deploymentApproved(): ApprovalsApiData {
  return approvalData({ deployments: [deploymentOf()] });
}

/** MR approved by carol and dave: meets `mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers] }`. */
export function mergeRequestApproved(): ApprovalsApiData {
  return approvalData({ mergeRequests: [mergeRequestOf()] });
}

/** Both kinds met: the happy path of `payments-migrate-production` in CONTRACT.md §3 (with min 2 reviewers). */
export function fullyApproved(): ApprovalsApiData {
  return approvalData({ deployments: [deploymentOf()], mergeRequests: [mergeRequestOf()] });
}

/** Only the author approved the MR: denied with "not counted: erin (author)". */
export function selfApprovedMergeRequest(): ApprovalsApiData {
  return approvalData({ mergeRequests: [mergeRequestOf({ approved_by: [{ user: USERS.erin, approved_at: '2025-06-01T10:30:00.000Z' }] })] });
}

/** Approved before the last push: stale under `fresh: true`. */
export function staleMergeRequestApproval(): ApprovalsApiData {
  return approvalData({ mergeRequests: [mergeRequestOf({ approved_by: [
    { user: USERS.carol, approved_at: '2025-06-01T09:00:00.000Z' }, { user: USERS.dave, approved_at: '2025-06-01T10:45:00.000Z' }] })] });
}

/** The deployment was rejected by carol after bob approved it. */
export function rejectedDeployment(): ApprovalsApiData {
  return approvalData({ deployments: [deploymentOf({ approvals: [
    { user: USERS.bob, status: 'approved', created_at: '2025-06-01T11:00:00.000Z' },
    { user: USERS.carol, status: 'rejected', created_at: '2025-06-01T11:05:00.000Z', comment: 'not today' }] })] });
}

/** The only approved deployment of production belongs to another job (303). */
export function deploymentOfAnotherJob(): ApprovalsApiData {
  const other = deploymentOf();
  return approvalData({ deployments: [deploymentOf({ id: 901, deployable: { ...other.deployable, id: 303 } })] });
}
