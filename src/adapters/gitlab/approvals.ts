/**
 * Approval facts from the GitLab API v4 through @gitbeaker (the GitLab client's `approvals`, client.ts). Only what
 * the candidate rules need is fetched; independent calls run in parallel and each kind starts its dependent calls as
 * soon as it can, so a lookup takes about the longest chain (deployments → deployment → users/members; MRs of the
 * commit → approvals → users/members), not the sum. Every list is narrowed and page-capped (paginate.ts), so one
 * request spends a bounded number of calls. Approval results are never cached here; only group membership and user
 * profiles are, briefly. Every failure is an error: nothing here can ever answer "approved" by default.
 */
import { setMaxListeners } from 'node:events';
import type { Commits, Deployments, GroupMembers, MergeRequestApprovals, MergeRequests, Users } from '@gitbeaker/rest';
import {
  mergeRequestMismatch,
  type ApprovalFacts,
  type ApprovalUser,
  type DeploymentApproval,
  type DeploymentFacts,
  type MergeRequestFacts,
} from '../../core/approvals.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import type { FactNeeds } from '../../core/policy/evaluate.js';
import type { RequestSignal } from '../../ports.js';
import * as api from './approval-responses.js';
import { pathId, withSignal } from './gitbeaker-requester.js';
import { allPages, findInPages, pageOf, PER_PAGE } from './paginate.js';
import { isNotFound, parseGitLab } from './translate.js';
import type { TtlCache } from './ttl-cache.js';

/** One issuer's gitbeaker resources, built once by the client. */
export interface ApprovalResources {
  readonly deployments: Deployments;
  readonly commits: Commits;
  readonly mergeRequests: MergeRequests;
  readonly mergeRequestApprovals: MergeRequestApprovals;
  readonly groupMembers: GroupMembers;
  readonly users: Users;
}

/** Brief caches shared by every lookup of one client: never approval results. */
export interface ApprovalCaches {
  readonly memberships: TtlCache<boolean>;
  readonly profiles: TtlCache<api.ApiUser | null>;
}

/**
 * Pages of one deployments search. Narrowed as GitLab's Deployments API allows: the token's environment, `running`
 * (the job that holds the token is running, and so is its deployment), updated since shortly before the token was
 * issued (the deployment turns `running` when its job starts; `updated_after` requires `order_by=updated_at`).
 */
export const DEPLOYMENT_PAGES = 3;
/** Merge requests of a commit, MR commits and diff versions: past this a list fails closed. */
export const LIST_PAGES = 10;
/** Slack for the deployment's update time against the token's `iat` (clocks of GitLab's nodes, job start). */
const UPDATED_SLACK_SECONDS = 600;

// gitbeaker passes unknown options through as query parameters; its types just do not list these ones.
type Options<F extends (...args: never[]) => unknown, I extends number> = NonNullable<Parameters<F>[I]>;

/** One request's view of the API: the issuer's resources, the request's signal, and the approvers seen. */
interface Lookup {
  readonly api: ApprovalResources;
  readonly signal: RequestSignal;
  /** Resolve the full profiles and group memberships of these approvers, recording memberships for the facts. */
  enrich(users: readonly ApprovalUser[]): Promise<Map<string, ApprovalUser>>;
  readonly members: Map<string, Set<string>>;
}

/** Best MR for the token's commit: merged into the token's branch and producing the commit, else the closest miss. */
function chooseMergeRequest(list: readonly api.ApiMergeRequest[], principal: GitLabPrincipal): api.ApiMergeRequest | undefined {
  const score = (mr: api.ApiMergeRequest): number =>
    (mr.state === 'merged' ? 0 : 4) +
    (`refs/heads/${mr.target_branch}` === principal.ref_path ? 0 : 2) +
    (mr.merge_commit_sha === principal.sha || mr.squash_commit_sha === principal.sha ? 0 : mr.sha === principal.sha ? 0.5 : 1);
  const newest = (mr: api.ApiMergeRequest): number => Date.parse(mr.merged_at ?? '') || 0;
  return [...list].sort((a, b) => score(a) - score(b) || newest(b) - newest(a))[0];
}

/** The project the job runs in (job_project_id, GitLab 18.4+): its deployments and the MRs merged into it. */
function projectOf(principal: GitLabPrincipal): string {
  return principal.job_project_id ?? principal.project_id;
}

async function findDeploymentId(lookup: Lookup, principal: GitLabPrincipal, environment: string): Promise<number | null> {
  const project = projectOf(principal);
  const query = {
    environment,
    status: 'running',
    updatedAfter: new Date((principal.iat - UPDATED_SLACK_SECONDS) * 1000).toISOString(),
    orderBy: 'updated_at',
    sort: 'desc',
    perPage: PER_PAGE,
    showExpanded: true,
  } as Options<Deployments['all'], 1>;
  const match = await findInPages(
    async (page) => pageOf(api.deploymentListItemSchema, await lookup.api.deployments.all(project, withSignal({ ...query, page }, lookup.signal)), 'projects/:id/deployments'),
    (item) => String(item.deployable?.id) === principal.job_id && item.environment?.name === environment,
    DEPLOYMENT_PAGES,
  );
  // Not within the pages looked at: the job has no deployment the broker can vouch for, which no rule counts as approved.
  return match?.id ?? null;
}

async function deploymentFacts(lookup: Lookup, principal: GitLabPrincipal): Promise<DeploymentFacts | null> {
  const environment = principal.environment;
  if (environment === undefined) return null;
  const id = await findDeploymentId(lookup, principal, environment);
  if (id === null) return null;
  const deployment = parseGitLab(
    api.deploymentSchema,
    await lookup.api.deployments.show(projectOf(principal), id, withSignal({}, lookup.signal)),
    'projects/:id/deployments/:deployment_id',
  );
  const approvals: DeploymentApproval[] = (deployment.approvals ?? []).flatMap((entry) =>
    entry.status === 'approved' || entry.status === 'rejected'
      ? [{ user: api.toApprovalUser(entry.user), status: entry.status, at: entry.created_at }]
      : [],
  );
  const profiles = await lookup.enrich(approvals.filter((entry) => entry.status === 'approved').map((entry) => entry.user));
  return {
    deploymentId: deployment.id,
    jobId: String(deployment.deployable?.id ?? ''),
    environment: deployment.environment.name,
    pendingApprovalCount: deployment.pending_approval_count ?? 0,
    approvals: approvals.map((entry) => ({ ...entry, user: profiles.get(entry.user.id) ?? entry.user })),
  };
}

async function mergeRequestFacts(lookup: Lookup, principal: GitLabPrincipal): Promise<MergeRequestFacts | null> {
  const project = projectOf(principal);
  const { commits, mergeRequests, mergeRequestApprovals } = lookup.api;
  const list = await allPages(
    async (page) => pageOf(api.mergeRequestSchema, await commits.allMergeRequests(project, principal.sha, withSignal({ page, perPage: PER_PAGE, showExpanded: true } as Options<Commits['allMergeRequests'], 2>, lookup.signal)), 'projects/:id/repository/commits/:sha/merge_requests'),
    LIST_PAGES,
    'merge requests of the commit',
  );
  const chosen = chooseMergeRequest(list, principal);
  if (!chosen) return null;
  const base = {
    iid: chosen.iid,
    state: chosen.state,
    targetBranch: chosen.target_branch,
    mergeCommitSha: chosen.merge_commit_sha ?? null,
    squashCommitSha: chosen.squash_commit_sha ?? null,
    sha: chosen.sha ?? null,
    author: api.toApprovalUser(chosen.author),
  };
  // Not the MR that put this commit on this branch: its approvals cannot count, so do not spend calls on them.
  if (mergeRequestMismatch(base, principal) !== undefined) {
    return { ...base, committers: [], approvals: [], latestVersionAt: undefined };
  }
  const approvalsDone = mergeRequestApprovals
    .showConfiguration(project, withSignal({ mergerequestIId: chosen.iid }, lookup.signal))
    .then(async (body) => {
      const approvals = parseGitLab(api.mergeRequestApprovalsSchema, body, 'projects/:id/merge_requests/:iid/approvals').approved_by
        .map((entry) => ({ user: api.toApprovalUser(entry.user), at: entry.approved_at ?? undefined }));
      const profiles = await lookup.enrich(approvals.map((entry) => entry.user));
      return approvals.map((entry) => ({ ...entry, user: profiles.get(entry.user.id) ?? entry.user }));
    });
  const [approvals, mrCommits, versions] = await Promise.all([
    approvalsDone,
    allPages(
      async (page) => pageOf(api.commitSchema, await mergeRequests.allCommits(project, chosen.iid, withSignal({ page, perPage: PER_PAGE, showExpanded: true } as Options<MergeRequests['allCommits'], 2>, lookup.signal)), 'projects/:id/merge_requests/:iid/commits'),
      LIST_PAGES,
      'commits of the merge request',
    ),
    allPages(
      async (page) => pageOf(api.versionSchema, await mergeRequests.allDiffVersions(project, chosen.iid, withSignal({ page, perPage: PER_PAGE, showExpanded: true } as Options<MergeRequests['allDiffVersions'], 2>, lookup.signal)), 'projects/:id/merge_requests/:iid/versions'),
      LIST_PAGES,
      'diff versions of the merge request',
    ),
  ]);
  return { ...base, committers: api.toCommitters(mrCommits), approvals, latestVersionAt: api.latestVersionTime(versions) };
}

function startLookup(resources: ApprovalResources, caches: ApprovalCaches, scope: string, groups: readonly string[], signal: RequestSignal): Lookup {
  const members = new Map<string, Set<string>>(groups.map((group) => [group, new Set<string>()]));

  async function isMember(group: string, userId: string): Promise<boolean> {
    const key = `${scope}\n${group}\n${userId}`;
    let member = caches.memberships.get(key);
    if (member === undefined) {
      try {
        const body = await resources.groupMembers.show(group, pathId(userId), withSignal({ includeInherited: true }, signal));
        member = api.isActiveMember(parseGitLab(api.memberSchema, body, 'groups/:id/members/all/:user_id'));
      } catch (error) {
        if (!isNotFound(error)) throw error;
        member = false;
      }
      caches.memberships.set(key, member);
    }
    return member;
  }

  async function profile(userId: string): Promise<api.ApiUser | null> {
    const key = `${scope}\n${userId}`;
    let found = caches.profiles.get(key);
    if (found === undefined) {
      try {
        found = parseGitLab(api.userSchema, await resources.users.show(pathId(userId), withSignal({}, signal)), 'users/:id');
      } catch (error) {
        if (!isNotFound(error)) throw error;
        found = null;
      }
      caches.profiles.set(key, found);
    }
    return found;
  }

  async function enrich(approvers: readonly ApprovalUser[]): Promise<Map<string, ApprovalUser>> {
    // Blocked users and known bots never count, so they cost no calls.
    const distinct = [...new Map(approvers.filter((user) => !user.blocked && !user.bot).map((user) => [user.id, user])).values()];
    const enriched = await Promise.all(
      distinct.map(async (user) => {
        const [full] = await Promise.all([
          profile(user.id),
          ...groups.map(async (group) => {
            if (await isMember(group, user.id)) members.get(group)?.add(user.id);
          }),
        ]);
        return [user.id, api.withProfile(user, full ?? null)] as const;
      }),
    );
    return new Map(enriched);
  }

  return { api: resources, signal, enrich, members };
}

/**
 * The approval facts the candidate rules need, under the request's signal. `scope` keys the brief caches (the
 * issuer's API URL: two issuers may share one GitLab).
 * @example await lookupApprovals(resources, caches, issuer.apiUrl, principal, needs, signal)
 */
export async function lookupApprovals(
  resources: ApprovalResources, caches: ApprovalCaches, scope: string, principal: GitLabPrincipal, needs: FactNeeds, signal: RequestSignal,
): Promise<ApprovalFacts> {
  // every parallel call of the lookup listens to it; dozens are expected, not a leak
  if (signal instanceof EventTarget) setMaxListeners(0, signal);
  const lookup = startLookup(resources, caches, scope, needs.groups, signal);
  const [deployment, mergeRequest] = await Promise.all([
    needs.deploymentApprovals ? deploymentFacts(lookup, principal) : undefined,
    needs.mergeRequestApprovals ? mergeRequestFacts(lookup, principal) : undefined,
  ]);
  return {
    ...(deployment === undefined ? {} : { deployment }),
    ...(mergeRequest === undefined ? {} : { mergeRequest }),
    groupMembers: lookup.members,
  };
}
