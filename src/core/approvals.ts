/**
 * Pure approval rules over facts fetched from the GitLab API (issue [2/8]). Time is an argument.
 * The fact shapes are the contract between the GitLab approvals adapter and these rules. Every check fails closed:
 * a fact that is missing, ambiguous or about another job, environment or branch never counts as an approval.
 */
import type { GitLabPrincipal } from './claims.js';
import type { DeploymentApprovalsSpec, MergeRequestApprovalsSpec } from './policy/schema.js';

export interface ApprovalUser {
  readonly id: string;
  readonly username: string;
  /** Display name; only used to match commit authors, which carry names and emails but no usernames. */
  readonly name?: string;
  /** Lower-cased emails GitLab let the broker see (`public_email`, or `email` for an admin token). */
  readonly emails?: readonly string[];
  readonly bot: boolean;
  /** Any state other than `active` (blocked, deactivated, banned, ldap_blocked, …). */
  readonly blocked: boolean;
}

export interface DeploymentApproval {
  readonly user: ApprovalUser;
  readonly status: 'approved' | 'rejected';
  /** Server time of the approval (`created_at`). */
  readonly at: string;
}

export interface DeploymentFacts {
  readonly deploymentId: number;
  /** `deployable.id` of the deployment: must be the token's job. */
  readonly jobId: string;
  readonly environment: string;
  readonly pendingApprovalCount: number;
  readonly approvals: readonly DeploymentApproval[];
}

/** One author or committer identity of a commit in the MR, as git recorded it (no GitLab username). */
export interface Committer {
  readonly username?: string;
  readonly email?: string;
  readonly name?: string;
}

export interface MergeRequestFacts {
  readonly iid: number;
  readonly state: string;
  readonly targetBranch: string;
  readonly mergeCommitSha: string | null;
  readonly squashCommitSha: string | null;
  readonly sha: string | null;
  readonly author: ApprovalUser;
  readonly committers: readonly Committer[];
  /** `approved_by[]`: an approval that was revoked is simply absent. `at` is absent on GitLab before 18.x. */
  readonly approvals: readonly { readonly user: ApprovalUser; readonly at: string | undefined }[];
  /** `created_at` of the newest diff version (the last push), for freshness. */
  readonly latestVersionAt: string | undefined;
}

export interface ApprovalFacts {
  /** undefined: not fetched; null: fetched and none exists. */
  readonly deployment?: DeploymentFacts | null;
  readonly mergeRequest?: MergeRequestFacts | null;
  /** group path → ids of the approvers who are members. A group absent here has no known members. */
  readonly groupMembers?: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface Approver {
  readonly user: string;
  readonly at: string | undefined;
}

export interface ApprovalOutcome {
  readonly ok: boolean;
  readonly detail: string;
  readonly approvers: readonly Approver[];
}

interface Candidate {
  readonly user: ApprovalUser;
  readonly at: string | undefined;
}

/** Why an approval does not count, or undefined when it does. Checked in this order; the first reason is reported. */
type Exclusion = (candidate: Candidate) => string | undefined;

function fail(detail: string): ApprovalOutcome {
  return { ok: false, detail, approvers: [] };
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

function joinAnd(parts: readonly string[]): string {
  if (parts.length <= 1) return parts.join('');
  return `${parts.slice(0, -1).join(', ')} and ${parts.at(-1) ?? ''}`;
}

const baseExclusions: readonly Exclusion[] = [
  ({ user }) => (user.bot ? 'bot' : undefined),
  ({ user }) => (user.blocked ? 'not active' : undefined),
];

function groupExclusion(groups: readonly string[] | undefined, members: ApprovalFacts['groupMembers']): Exclusion[] {
  if (!groups) return [];
  // A person in several of the groups is still one approver: membership only filters, distinctness comes later.
  return [({ user }) => (groups.some((group) => members?.get(group)?.has(user.id) === true) ? undefined : `not in ${groups.join(' or ')}`)];
}

/**
 * Count distinct approvers (by user id) that pass every exclusion; the first approval of a person is the one shown.
 * Returns the outcome sentence: "needs 2 approvals from payments/reviewers excluding the author; has 1: carol".
 */
function count(min: number, requirement: string, candidates: readonly Candidate[], exclusions: readonly Exclusion[]): ApprovalOutcome {
  const counted = new Map<string, Approver>();
  const ignored = new Map<string, string>();
  for (const candidate of candidates) {
    const { id, username } = candidate.user;
    if (counted.has(id)) continue;
    const reason = exclusions.map((exclude) => exclude(candidate)).find((why) => why !== undefined);
    if (reason === undefined) {
      counted.set(id, { user: username, at: candidate.at });
      ignored.delete(id);
    } else if (!ignored.has(id)) {
      ignored.set(id, `${username} (${reason})`);
    }
  }
  const approvers = [...counted.values()];
  const names = approvers.map((approver) => approver.user).join(', ');
  const notCounted = ignored.size > 0 ? `; not counted: ${[...ignored.values()].join(', ')}` : '';
  const ok = approvers.length >= min;
  const detail = `needs ${plural(min, 'approval')}${requirement}; has ${approvers.length}${names ? `: ${names}` : ''}${notCounted}`;
  return { ok, detail, approvers };
}

function requirementText(fromGroups: readonly string[] | undefined, excluded: readonly string[], suffix = ''): string {
  const from = fromGroups ? ` from ${fromGroups.join(' or ')}` : '';
  const excluding = excluded.length > 0 ? ` excluding ${joinAnd(excluded)}` : '';
  return `${from}${excluding}${suffix}`;
}

/**
 * Deployment approvals of the token's own deployment: the deployment of `environment` whose job is `job_id`.
 * Any rejection denies; GitLab's own pending approvals deny.
 * @example evaluateDeploymentApprovals({ min: 1, excludeTriggerer: true }, principal, facts, new Date())
 */
export function evaluateDeploymentApprovals(
  spec: DeploymentApprovalsSpec,
  principal: GitLabPrincipal,
  facts: ApprovalFacts,
  _now: Date,
): ApprovalOutcome {
  const deployment = facts.deployment;
  const environment = principal.environment;
  if (environment === undefined) return fail('the job has no environment, so there is no deployment to approve');
  if (deployment === undefined) return fail('deployment approvals were not looked up');
  if (deployment === null) return fail(`no deployment to ${environment} for job ${principal.job_id}`);
  if (deployment.jobId !== principal.job_id || deployment.environment !== environment) {
    return fail(`deployment ${deployment.deploymentId} is for job ${deployment.jobId} in ${deployment.environment}, not job ${principal.job_id} in ${environment}`);
  }
  // A rejection stops the deployment in GitLab whoever gave it; it must stop the credentials too.
  const rejectedBy = [...new Set(deployment.approvals.filter((entry) => entry.status === 'rejected').map((entry) => entry.user.username))];
  if (rejectedBy.length > 0) return fail(`deployment ${deployment.deploymentId} was rejected by ${rejectedBy.join(', ')}`);
  if (deployment.pendingApprovalCount > 0) {
    return fail(`GitLab still waits for ${plural(deployment.pendingApprovalCount, 'approval')} of deployment ${deployment.deploymentId}`);
  }
  const excluded = spec.excludeTriggerer ? ['the triggerer'] : [];
  const exclusions: Exclusion[] = [...baseExclusions];
  if (spec.excludeTriggerer) exclusions.push(({ user }) => (user.id === principal.user_id ? 'triggerer' : undefined));
  exclusions.push(...groupExclusion(spec.fromGroups, facts.groupMembers));
  const candidates = deployment.approvals.filter((entry) => entry.status === 'approved');
  return count(spec.min, requirementText(spec.fromGroups, excluded), candidates, exclusions);
}

const NOREPLY = /^(?:(\d+)-)?([^@]+)@users\.noreply\./;

/**
 * Whether a git identity is this GitLab user. Commits carry no username, and the approvals API shows no private
 * email, so this matches what the API allows: a GitLab noreply address (`<id>-<username>@users.noreply.<host>`), an
 * email the user made visible, an explicit username, or the display name. Names can collide, which only excludes more
 * people (fails closed); a commit under an email and name the user never exposed cannot be matched.
 */
export function isSameIdentity(user: ApprovalUser, committer: Committer): boolean {
  if (committer.username !== undefined && committer.username === user.username) return true;
  const email = committer.email?.trim().toLowerCase();
  if (email) {
    const noreply = NOREPLY.exec(email);
    if (noreply && (noreply[1] === user.id || noreply[2] === user.username.toLowerCase())) return true;
    if (user.emails?.includes(email)) return true;
  }
  const name = committer.name?.trim().toLowerCase();
  return Boolean(name) && name === user.name?.trim().toLowerCase();
}

function timeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : time;
}

/** Why this MR cannot carry approvals for the token's commit on the token's ref, or undefined when it can. */
export function mergeRequestMismatch(
  mergeRequest: Pick<MergeRequestFacts, 'iid' | 'state' | 'targetBranch' | 'mergeCommitSha' | 'squashCommitSha' | 'sha'>,
  principal: Pick<GitLabPrincipal, 'sha' | 'ref_path'>,
): string | undefined {
  const ref = `!${mergeRequest.iid}`;
  if (mergeRequest.state !== 'merged') return `merge request ${ref} is ${mergeRequest.state}, not merged`;
  const target = `refs/heads/${mergeRequest.targetBranch}`;
  if (target !== principal.ref_path) return `merge request ${ref} was merged into ${target}, not ${principal.ref_path}`;
  const results = [mergeRequest.mergeCommitSha, mergeRequest.squashCommitSha, mergeRequest.sha];
  if (!results.includes(principal.sha)) return `merge request ${ref} did not produce commit ${principal.sha}`;
  return undefined;
}

/**
 * Merge-request approvals of the merged MR that produced the token's `sha` on the token's `ref_path`.
 * Freshness compares GitLab's own timestamps only (approval vs newest diff version), never the broker's clock.
 * @example evaluateMergeRequestApprovals({ min: 2, excludeAuthor: true, … }, principal, facts, new Date())
 */
export function evaluateMergeRequestApprovals(
  spec: MergeRequestApprovalsSpec,
  principal: GitLabPrincipal,
  facts: ApprovalFacts,
  _now: Date,
): ApprovalOutcome {
  const mergeRequest = facts.mergeRequest;
  if (mergeRequest === undefined) return fail('merge request approvals were not looked up');
  if (mergeRequest === null) return fail(`no merged merge request brought ${principal.sha} into ${principal.ref_path}`);
  const mismatch = mergeRequestMismatch(mergeRequest, principal);
  if (mismatch !== undefined) return fail(mismatch);

  const excluded: string[] = [];
  const exclusions: Exclusion[] = [...baseExclusions];
  if (spec.excludeAuthor) {
    excluded.push('the author');
    exclusions.push(({ user }) => (user.id === mergeRequest.author.id ? 'author' : undefined));
  }
  if (spec.excludeTriggerer) {
    excluded.push('the triggerer');
    exclusions.push(({ user }) => (user.id === principal.user_id ? 'triggerer' : undefined));
  }
  if (spec.excludeCommitters) {
    excluded.push('committers');
    exclusions.push(({ user }) => (mergeRequest.committers.some((committer) => isSameIdentity(user, committer)) ? 'committer' : undefined));
  }
  exclusions.push(...groupExclusion(spec.fromGroups, facts.groupMembers));
  let suffix = '';
  if (spec.fresh) {
    const pushedAt = timeOf(mergeRequest.latestVersionAt);
    if (pushedAt === undefined) return fail(`merge request !${mergeRequest.iid} has no diff version time, so freshness cannot be checked`);
    if (mergeRequest.approvals.some((approval) => approval.at === undefined)) {
      return fail(`GitLab did not report approval times (approved_at needs GitLab 18.x), so freshness of merge request !${mergeRequest.iid} cannot be checked`);
    }
    suffix = ` given after the last push (${mergeRequest.latestVersionAt ?? ''})`;
    // Strictly after: an approval in the same instant as a push cannot be shown to have seen it.
    exclusions.push(({ at }) => ((timeOf(at) ?? -Infinity) > pushedAt ? undefined : 'approved before the last push'));
  }
  const outcome = count(spec.min, requirementText(spec.fromGroups, excluded, suffix), mergeRequest.approvals, exclusions);
  return { ...outcome, detail: `merge request !${mergeRequest.iid} ${outcome.detail}` };
}
