/** The pure approval rules (src/core/approvals.ts), as tables with sentence names. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  evaluateDeploymentApprovals,
  evaluateMergeRequestApprovals,
  isSameIdentity,
  type ApprovalFacts,
  type ApprovalUser,
  type DeploymentFacts,
  type MergeRequestFacts,
} from '../src/core/approvals.js';
import { deploymentApprovalsSchema, mergeRequestApprovalsSchema } from '../src/core/policy/schema.js';
import { GROUPS, SCENARIO, USERS, scenarioPrincipal } from './support/approval-scenarios.js';

const NOW = new Date('2025-06-01T13:00:00.000Z');

const principal = scenarioPrincipal;

function user(from: { id: number; username: string; name?: string; bot?: boolean; state?: string }, emails: string[] = []): ApprovalUser {
  return { id: String(from.id), username: from.username, ...(from.name ? { name: from.name } : {}), emails, bot: from.bot === true, blocked: (from.state ?? 'active') !== 'active' };
}

const members = new Map<string, ReadonlySet<string>>([
  [GROUPS.release, new Set(['1', '2', '3'])],
  [GROUPS.reviewers, new Set(['1', '3', '4', '5'])],
]);

const fresh = (minutes: number): string => new Date(Date.parse(SCENARIO.lastPushAt) + minutes * 60_000).toISOString();

function mergeRequest(overrides: Partial<MergeRequestFacts> = {}): MergeRequestFacts {
  return {
    iid: 42, state: 'merged', targetBranch: 'main', mergeCommitSha: SCENARIO.sha, squashCommitSha: null, sha: 'feed'.repeat(10),
    author: user(USERS.erin), committers: [{ name: 'Erin Author', email: '5-erin@users.noreply.gitlab.example.com' }],
    approvals: [{ user: user(USERS.carol), at: fresh(30) }, { user: user(USERS.dave), at: fresh(45) }],
    latestVersionAt: SCENARIO.lastPushAt,
    ...overrides,
  };
}

function deployment(overrides: Partial<DeploymentFacts> = {}): DeploymentFacts {
  return {
    deploymentId: 900, jobId: SCENARIO.jobId, environment: SCENARIO.environment, pendingApprovalCount: 0,
    approvals: [{ user: user(USERS.bob), status: 'approved', at: '2025-06-01T11:00:00.000Z' }],
    ...overrides,
  };
}

const mrSpec = (overrides: Record<string, unknown> = {}) => mergeRequestApprovalsSchema.parse({ min: 2, fromGroups: [GROUPS.reviewers], ...overrides });
const deploySpec = (overrides: Record<string, unknown> = {}) => deploymentApprovalsSchema.parse({ min: 1, fromGroups: [GROUPS.release], ...overrides });

interface MergeRequestCase {
  readonly name: string;
  readonly spec?: Record<string, unknown>;
  readonly mr?: MergeRequestFacts | null;
  readonly claims?: Record<string, string | undefined>;
  readonly ok: boolean;
  readonly detail: RegExp;
  readonly approvers?: readonly string[];
}

const mergeRequestCases: MergeRequestCase[] = [
  { name: 'two fresh approvals from reviewers are enough', ok: true, detail: /has 2: carol, dave/, approvers: ['carol', 'dave'] },
  { name: 'one approval is too few for min 2 and the detail says what is missing', mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(5) }] }), ok: false,
    detail: /^merge request !42 needs 2 approvals from payments\/reviewers excluding the author, the triggerer and committers given after the last push \(.+\); has 1: carol$/ },
  { name: 'the author as the only approver does not count', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.erin), at: fresh(5) }] }), ok: false, detail: /has 0; not counted: erin \(author\)/ },
  { name: 'the author counts when excludeAuthor is false and excludeCommitters is false', spec: { min: 1, excludeAuthor: false, excludeCommitters: false }, mr: mergeRequest({ approvals: [{ user: user(USERS.erin), at: fresh(5) }] }), ok: true, detail: /has 1: erin/ },
  { name: 'the triggerer as the only approver does not count', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.alice), at: fresh(5) }] }), ok: false, detail: /alice \(triggerer\)/ },
  { name: 'a committer matched by display name as the only approver does not count', spec: { min: 1 },
    mr: mergeRequest({ committers: [{ name: 'dave reviewer', email: 'dave@laptop.local' }], approvals: [{ user: user(USERS.dave), at: fresh(5) }] }), ok: false, detail: /dave \(committer\)/ },
  { name: 'a committer matched by a GitLab noreply address does not count', spec: { min: 1 },
    mr: mergeRequest({ committers: [{ name: 'D', email: '4-dave@users.noreply.gitlab.example.com' }], approvals: [{ user: user(USERS.dave), at: fresh(5) }] }), ok: false, detail: /dave \(committer\)/ },
  { name: 'a committer matched by a public email does not count', spec: { min: 1 },
    mr: mergeRequest({ committers: [{ email: 'DAVE@example.com' }], approvals: [{ user: user(USERS.dave, ['dave@example.com']), at: fresh(5) }] }), ok: false, detail: /dave \(committer\)/ },
  { name: 'an approver outside the groups does not count', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.frank), at: fresh(5) }] }), ok: false, detail: /frank \(not in payments\/reviewers\)/ },
  { name: 'the same user in two groups counts once', spec: { fromGroups: [GROUPS.release, GROUPS.reviewers] }, mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(5) }] }), ok: false, detail: /from payments\/release or payments\/reviewers .*has 1: carol$/ },
  { name: 'the same approval listed twice counts once', mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(5) }, { user: user(USERS.carol), at: fresh(6) }] }), ok: false, detail: /has 1: carol$/ },
  { name: 'an approval older than the newest push is stale', mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(-10) }, { user: user(USERS.dave), at: fresh(45) }] }), ok: false, detail: /has 1: dave; not counted: carol \(approved before the last push\)/ },
  { name: 'an approval at the very instant of the push is stale', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(0) }] }), ok: false, detail: /carol \(approved before the last push\)/ },
  { name: 'a stale approval counts when fresh is false', spec: { fresh: false }, mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(-10) }, { user: user(USERS.dave), at: undefined }] }), ok: true, detail: /has 2/ },
  { name: 'missing approved_at on an old GitLab fails closed when fresh is required', mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: undefined }, { user: user(USERS.dave), at: fresh(1) }] }), ok: false, detail: /approved_at needs GitLab 18/ },
  { name: 'a missing diff version time fails closed when fresh is required', mr: mergeRequest({ latestVersionAt: undefined }), ok: false, detail: /no diff version time/ },
  { name: 'a squash-merged MR counts', mr: mergeRequest({ mergeCommitSha: null, squashCommitSha: SCENARIO.sha }), ok: true, detail: /has 2/ },
  { name: 'a fast-forward merged MR counts through its head sha', mr: mergeRequest({ mergeCommitSha: null, sha: SCENARIO.sha }), ok: true, detail: /has 2/ },
  { name: 'an MR merged into another branch never counts', mr: mergeRequest({ targetBranch: 'release' }), ok: false, detail: /^merge request !42 was merged into refs\/heads\/release, not refs\/heads\/main$/ },
  { name: 'an MR for a tag pipeline never counts', claims: { ref: 'v1', ref_type: 'tag', ref_path: 'refs/tags/v1' }, ok: false, detail: /not refs\/tags\/v1/ },
  { name: 'an open MR never counts', mr: mergeRequest({ state: 'opened' }), ok: false, detail: /^merge request !42 is opened, not merged$/ },
  { name: 'an MR that did not produce the commit never counts', mr: mergeRequest({ mergeCommitSha: 'c'.repeat(40) }), ok: false, detail: /^merge request !42 did not produce commit / },
  { name: 'no merged MR denies', mr: null, ok: false, detail: /no merged merge request brought/ },
  { name: 'bots and blocked users never count', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.tokenBot), at: fresh(5) }, { user: user(USERS.blocked), at: fresh(5) }] }), ok: false,
    detail: /project_20_bot_5f2e \(bot\), gone \(not active\)/ },
  { name: 'the triggerer counts when excludeTriggerer is false', spec: { min: 1, excludeTriggerer: false }, mr: mergeRequest({ approvals: [{ user: user(USERS.alice), at: fresh(5) }] }), ok: true, detail: /^merge request !42 needs 1 approval from payments\/reviewers excluding the author and committers given after/ },
  { name: 'an approver who made any one of several commits does not count', spec: { min: 1 },
    mr: mergeRequest({ committers: [{ name: 'Erin Author' }, { username: 'dave' }], approvals: [{ user: user(USERS.dave), at: fresh(5) }] }), ok: false, detail: /dave \(committer\)/ },
  { name: 'without fresh the text names no push', spec: { fresh: false }, ok: true, detail: /^merge request !42 needs 2 approvals from payments\/reviewers excluding the author, the triggerer and committers; has 2: carol, dave$/ },
  { name: 'an approval time that cannot be read is stale', spec: { min: 1 }, mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: 'yesterday' }] }), ok: false, detail: /carol \(approved before the last push\)/ },
  { name: 'a person approving twice is counted and shown once, with the first approval', spec: { min: 1 },
    mr: mergeRequest({ approvals: [{ user: user(USERS.carol), at: fresh(5) }, { user: user(USERS.carol), at: fresh(-10) }] }), ok: true, detail: /has 1: carol$/, approvers: ['carol'] },
  { name: 'a person not counted twice is reported with the first reason', spec: { min: 1 },
    mr: mergeRequest({ approvals: [{ user: user({ ...USERS.carol, state: 'blocked' }), at: fresh(5) }, { user: user(USERS.carol), at: fresh(-10) }] }), ok: false, detail: /has 0; not counted: carol \(not active\)$/ },
  { name: 'an approver outside several groups is told all of them', spec: { min: 1, fromGroups: [GROUPS.release, GROUPS.reviewers] }, mr: mergeRequest({ approvals: [{ user: user(USERS.frank), at: fresh(5) }] }), ok: false,
    detail: /frank \(not in payments\/release or payments\/reviewers\)$/ },
  { name: 'a group nobody was found in counts nobody', spec: { min: 1, fromGroups: ['payments/unknown', GROUPS.reviewers] }, mr: mergeRequest({ approvals: [{ user: user(USERS.frank), at: fresh(5) }] }), ok: false,
    detail: /frank \(not in payments\/unknown or payments\/reviewers\)$/ },
];

describe('merge request approval rules', () => {
  for (const testCase of mergeRequestCases) {
    it(testCase.name, () => {
      const facts: ApprovalFacts = { mergeRequest: testCase.mr === undefined ? mergeRequest() : testCase.mr, groupMembers: members };
      const outcome = evaluateMergeRequestApprovals(mrSpec(testCase.spec), principal(testCase.claims), facts, NOW);
      assert.equal(outcome.ok, testCase.ok, outcome.detail);
      assert.match(outcome.detail, testCase.detail);
      if (testCase.approvers) assert.deepEqual(outcome.approvers.map((approver) => approver.user), testCase.approvers);
      if (!testCase.ok && testCase.detail.source.includes('has')) assert.ok(outcome.approvers.length < 2);
    });
  }

  it('facts that were never fetched deny, with no approvers', () => {
    const outcome = evaluateMergeRequestApprovals(mrSpec(), principal(), {}, NOW);
    assert.equal(outcome.ok, false);
    assert.match(outcome.detail, /^merge request approvals were not looked up$/);
    assert.deepEqual(outcome.approvers, []);
  });

  it('group members that were never fetched count nobody', () => {
    const outcome = evaluateMergeRequestApprovals(mrSpec({ min: 1 }), principal(), { mergeRequest: mergeRequest() }, NOW);
    assert.equal(outcome.ok, false);
    assert.match(outcome.detail, /has 0; not counted: carol \(not in payments\/reviewers\), dave \(not in payments\/reviewers\)$/);
    assert.deepEqual(outcome.approvers, []);
  });
});

interface DeploymentCase {
  readonly name: string;
  readonly spec?: Record<string, unknown>;
  readonly deployment?: DeploymentFacts | null;
  readonly claims?: Record<string, string | undefined>;
  readonly ok: boolean;
  readonly detail: RegExp;
}

const deploymentCases: DeploymentCase[] = [
  { name: 'an approval from the release group is enough', ok: true, detail: /^needs 1 approval from payments\/release excluding the triggerer; has 1: bob$/ },
  { name: 'too few approvals deny', spec: { min: 2 }, ok: false, detail: /needs 2 approvals .*has 1: bob/ },
  { name: 'a deployment approval for another job never counts', deployment: deployment({ jobId: '303' }), ok: false, detail: /deployment 900 is for job 303 in production, not job 302 in production/ },
  { name: 'a deployment approval for another environment never counts', deployment: deployment({ environment: 'staging' }), ok: false, detail: /in staging, not job 302 in production/ },
  { name: 'every rejecter is named', deployment: deployment({ approvals: [{ user: user(USERS.carol), status: 'rejected', at: 'x' }, { user: user(USERS.dave), status: 'rejected', at: 'y' }] }), ok: false, detail: /^deployment 900 was rejected by carol, dave$/ },
  { name: 'a rejected deployment approval counts against', deployment: deployment({ approvals: [{ user: user(USERS.bob), status: 'approved', at: 'x' }, { user: user(USERS.carol), status: 'rejected', at: 'y' }] }), ok: false, detail: /rejected by carol/ },
  { name: 'the triggerer approving their own deployment does not count', deployment: deployment({ approvals: [{ user: user(USERS.alice), status: 'approved', at: 'x' }] }), ok: false, detail: /alice \(triggerer\)/ },
  { name: 'the triggerer counts when excludeTriggerer is false', spec: { excludeTriggerer: false }, deployment: deployment({ approvals: [{ user: user(USERS.alice), status: 'approved', at: 'x' }] }), ok: true, detail: /has 1: alice/ },
  { name: 'an approver outside the groups does not count', deployment: deployment({ approvals: [{ user: user(USERS.dave), status: 'approved', at: 'x' }] }), ok: false, detail: /dave \(not in payments\/release\)/ },
  { name: 'an approver in any one of several groups counts', spec: { fromGroups: [GROUPS.release, GROUPS.reviewers] }, ok: true, detail: /^needs 1 approval from payments\/release or payments\/reviewers excluding the triggerer; has 1: bob$/ },
  { name: 'without fromGroups any approver but the triggerer counts', spec: { fromGroups: undefined }, deployment: deployment({ approvals: [{ user: user(USERS.dave), status: 'approved', at: 'x' }] }), ok: true, detail: /^needs 1 approval excluding the triggerer; has 1: dave$/ },
  { name: 'without fromGroups or exclusions the text says so', spec: { fromGroups: undefined, excludeTriggerer: false }, ok: true, detail: /^needs 1 approval; has 1: bob$/ },
  { name: 'a bot approval does not count', deployment: deployment({ approvals: [{ user: user(USERS.tokenBot), status: 'approved', at: 'x' }] }), ok: false, detail: /\(bot\)/ },
  { name: 'approvals GitLab still waits for deny', deployment: deployment({ pendingApprovalCount: 1 }), ok: false, detail: /GitLab still waits for 1 approval/ },
  { name: 'no deployment for the job denies', deployment: null, ok: false, detail: /no deployment to production for job 302/ },
  { name: 'a job without an environment denies', claims: { environment: undefined }, ok: false, detail: /has no environment/ },
];

describe('deployment approval rules', () => {
  for (const testCase of deploymentCases) {
    it(testCase.name, () => {
      const facts: ApprovalFacts = { deployment: testCase.deployment === undefined ? deployment() : testCase.deployment, groupMembers: members };
      const outcome = evaluateDeploymentApprovals(deploySpec(testCase.spec), principal(testCase.claims), facts, NOW);
      assert.equal(outcome.ok, testCase.ok, outcome.detail);
      assert.match(outcome.detail, testCase.detail);
    });
  }
});

describe('committer identity matching', () => {
  const dave = user(USERS.dave, ['dave@example.com']);
  const table: [string, Parameters<typeof isSameIdentity>[1], boolean][] = [
    ['an explicit username matches', { username: 'dave' }, true],
    ['a noreply address with the user id matches', { email: '4-someone@users.noreply.gitlab.example.com' }, true],
    ['a legacy noreply address with the username matches', { email: 'dave@users.noreply.gitlab.example.com' }, true],
    ['a visible email matches case-insensitively', { email: 'Dave@Example.com' }, true],
    ['the display name matches case-insensitively', { name: ' DAVE REVIEWER ' }, true],
    ['another person does not match', { name: 'Carol Reviewer', email: 'carol@example.com' }, false],
    ['another username does not match', { username: 'carol' }, false],
    ['a noreply address after another address does not match', { email: 'carol@4-dave@users.noreply.gitlab.example.com' }, false],
    ['an empty identity does not match', {}, false],
  ];
  for (const [name, committer, expected] of table) it(name, () => assert.equal(isSameIdentity(dave, committer), expected));
});

describe('committer identity matching with what GitLab leaves out', () => {
  it('a noreply address with a user id of several digits matches', () => {
    assert.equal(isSameIdentity({ id: '14', username: 'nina', bot: false, blocked: false }, { email: '14-n@users.noreply.gitlab.example.com' }), true);
  });

  it('a user whose emails GitLab did not show matches by name only', () => {
    const hidden: ApprovalUser = { id: '4', username: 'dave', name: 'Dave Reviewer', bot: false, blocked: false };
    assert.equal(isSameIdentity(hidden, { email: 'dave@example.com' }), false);
    assert.equal(isSameIdentity(hidden, { email: 'dave@example.com', name: 'dave reviewer' }), true);
  });

  it('a display name with spaces around it still matches, and a user without one matches no name', () => {
    assert.equal(isSameIdentity({ id: '4', username: 'dave', name: '  Dave Reviewer ', bot: false, blocked: false }, { name: 'Dave Reviewer' }), true);
    assert.equal(isSameIdentity({ id: '4', username: 'dave', bot: false, blocked: false }, { name: 'Dave Reviewer' }), false);
  });
});
