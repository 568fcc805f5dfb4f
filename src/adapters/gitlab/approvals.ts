/**
 * Approval facts from the GitLab API v4 through @gitbeaker (issue [2/8]). Only what the candidate rules need is
 * fetched; independent calls run in parallel and each kind starts its dependent calls as soon as it can, so a lookup
 * takes about the longest chain (deployments → deployment → users/members; MRs of the commit → approvals →
 * users/members), not the sum. Approval results are never cached; only group membership and user profiles are, briefly.
 * Every failure becomes BrokerError('upstream_unavailable'): nothing here can ever answer "approved" by default.
 */
import { Commits, Deployments, GroupMembers, MergeRequestApprovals, MergeRequests, Users } from '@gitbeaker/rest';
import { ZodError } from 'zod';
import {
  mergeRequestMismatch,
  type ApprovalFacts,
  type ApprovalUser,
  type DeploymentApproval,
  type DeploymentFacts,
  type MergeRequestFacts,
} from '../../core/approvals.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import type { FactNeeds } from '../../core/policy/evaluate.js';
import type { FactSource, TrustedIssuer } from '../../ports.js';
import { gitbeakerHost } from './api-client.js';
import * as api from './approval-responses.js';
import { createRequester, deadlineOf, GitLabApiError, type InFlightTable } from './gitbeaker-requester.js';
import { TtlCache } from './ttl-cache.js';

export interface GitLabApprovalSourceOptions {
  /** The broker's read_api token for an issuer. Never logged, never part of an error. */
  readonly fetchToken: (issuer: TrustedIssuer) => Promise<string> | string;
  /** Deadline of one whole lookup, pagination included. */
  readonly timeoutMs: number;
  /** How long a (group, user) membership or a user profile is reused; default 30 s, 0 disables. */
  readonly membershipTtlMs?: number;
  /** Milliseconds since the epoch, for cache expiry; default Date.now. */
  readonly clock?: () => number;
}

export type ApprovalSource = Pick<FactSource, 'approvals'>;

const PER_PAGE = 100;

type Config = ConstructorParameters<typeof Deployments<false>>[0] & { token: string; camelize: false };

// gitbeaker passes unknown options through as query parameters; its types just do not list per_page for versions.
const VERSIONS_PAGE = { perPage: PER_PAGE } as Parameters<MergeRequests['allDiffVersions']>[2];

/** One request's view of the API: gitbeaker resources bound to its deadline, and its member lookups. */
interface Lookup {
  readonly deployments: Deployments;
  readonly commits: Commits;
  readonly mergeRequests: MergeRequests;
  readonly mergeRequestApprovals: MergeRequestApprovals;
  /** Resolve the full profiles and group memberships of these approvers, recording memberships for the facts. */
  enrich(users: readonly ApprovalUser[]): Promise<Map<string, ApprovalUser>>;
  readonly members: Map<string, Set<string>>;
}

function isNotFound(error: unknown): boolean {
  return error instanceof GitLabApiError && error.failure === 'status' && error.status === 404;
}

function translate(error: unknown): BrokerError {
  if (isBrokerError(error)) return error;
  let detail = 'GitLab approvals lookup failed';
  let retryAfter: number | undefined;
  if (error instanceof GitLabApiError) {
    retryAfter = error.retryAfterSeconds;
    const what = { unreachable: 'unreachable', timeout: 'timed out', not_json: 'answered with a body that is not JSON', status: `answered ${error.status ?? '?'}` }[error.failure];
    detail = `${detail}: GitLab API ${what}`;
  } else if (error instanceof ZodError) {
    detail = `${detail}: unexpected GitLab API response`;
  }
  return new BrokerError('upstream_unavailable', detail, { cause: error, ...(retryAfter === undefined ? {} : { retryAfter }) });
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
  // Newest first: the job's deployment is almost always on the first page, but a busy environment may push it further.
  for (let page = 1; ; ) {
    const response = (await lookup.deployments.all(projectOf(principal), {
      environment, orderBy: 'id', sort: 'desc', perPage: PER_PAGE, page, showExpanded: true,
    })) as unknown as { data: unknown; paginationInfo: { next: number | null } };
    const match = api.deploymentListSchema.parse(response.data)
      .find((item) => String(item.deployable?.id) === principal.job_id && item.environment?.name === environment);
    if (match) return match.id;
    const next = response.paginationInfo.next;
    if (next === null || next <= page) return null;
    page = next;
  }
}

async function deploymentFacts(lookup: Lookup, principal: GitLabPrincipal): Promise<DeploymentFacts | null> {
  const environment = principal.environment;
  if (environment === undefined) return null;
  const id = await findDeploymentId(lookup, principal, environment);
  if (id === null) return null;
  const deployment = api.deploymentSchema.parse(await lookup.deployments.show(projectOf(principal), id));
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
  const list = api.mergeRequestListSchema.parse(
    await lookup.commits.allMergeRequests(projectOf(principal), principal.sha, { perPage: PER_PAGE }),
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
  const project = projectOf(principal);
  const approvalsDone = lookup.mergeRequestApprovals
    .showConfiguration(project, { mergerequestIId: chosen.iid })
    .then(async (body) => {
      const approvals = api.mergeRequestApprovalsSchema.parse(body).approved_by
        .map((entry) => ({ user: api.toApprovalUser(entry.user), at: entry.approved_at ?? undefined }));
      const profiles = await lookup.enrich(approvals.map((entry) => entry.user));
      return approvals.map((entry) => ({ ...entry, user: profiles.get(entry.user.id) ?? entry.user }));
    });
  const [approvals, commits, versions] = await Promise.all([
    approvalsDone,
    lookup.mergeRequests.allCommits(project, chosen.iid, { perPage: PER_PAGE }).then((body) => api.commitListSchema.parse(body)),
    lookup.mergeRequests.allDiffVersions(project, chosen.iid, VERSIONS_PAGE).then((body) => api.versionListSchema.parse(body)),
  ]);
  return { ...base, committers: api.toCommitters(commits), approvals, latestVersionAt: api.latestVersionTime(versions) };
}

/**
 * The `approvals` half of FactSource, backed by the GitLab REST API.
 * @example createGitLabApprovalSource({ fetchToken: (issuer) => tokens.get(issuer.issuer), timeoutMs: 5000 })
 */
export function createGitLabApprovalSource(options: GitLabApprovalSourceOptions): ApprovalSource {
  const clock = options.clock ?? Date.now;
  const ttl = options.membershipTtlMs ?? 30_000;
  const memberships = new TtlCache<boolean>(ttl, clock);
  const profiles = new TtlCache<api.ApiUser | null>(ttl, clock);
  const inFlight: InFlightTable = new Map();

  function lookupFor(issuer: TrustedIssuer, token: string, groups: readonly string[], signal: AbortSignal): Lookup {
    const config: Config = {
      host: gitbeakerHost(issuer.apiUrl),
      token,
      camelize: false,
      queryTimeout: null,
      rateLimits: {},
      requesterFn: createRequester({ signal, inFlight, maxMs: options.timeoutMs }),
    };
    const groupMembers = new GroupMembers(config);
    const users = new Users(config);
    const members = new Map<string, Set<string>>(groups.map((group) => [group, new Set<string>()]));
    const scope = issuer.apiUrl;

    async function isMember(group: string, userId: string): Promise<boolean> {
      const key = `${scope}\n${group}\n${userId}`;
      let member = memberships.get(key);
      if (member === undefined) {
        try {
          member = api.isActiveMember(api.memberSchema.parse(await groupMembers.show(group, Number(userId), { includeInherited: true })));
        } catch (error) {
          if (!isNotFound(error)) throw error;
          member = false;
        }
        memberships.set(key, member);
      }
      return member;
    }

    async function profile(userId: string): Promise<api.ApiUser | null> {
      const key = `${scope}\n${userId}`;
      let found = profiles.get(key);
      if (found === undefined) {
        try {
          found = api.userSchema.parse(await users.show(Number(userId)));
        } catch (error) {
          if (!isNotFound(error)) throw error;
          found = null;
        }
        profiles.set(key, found);
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

    return {
      deployments: new Deployments(config),
      commits: new Commits(config),
      mergeRequests: new MergeRequests(config),
      mergeRequestApprovals: new MergeRequestApprovals(config),
      enrich,
      members,
    };
  }

  return {
    async approvals(issuer: TrustedIssuer, principal: GitLabPrincipal, needs: FactNeeds, signal: AbortSignal): Promise<ApprovalFacts> {
      if (!needs.deploymentApprovals && !needs.mergeRequestApprovals) return {};
      const { deadline, end } = deadlineOf(signal, options.timeoutMs);
      try {
        const lookup = lookupFor(issuer, await options.fetchToken(issuer), needs.groups, deadline);
        const [deployment, mergeRequest] = await Promise.all([
          needs.deploymentApprovals ? deploymentFacts(lookup, principal) : undefined,
          needs.mergeRequestApprovals ? mergeRequestFacts(lookup, principal) : undefined,
        ]);
        return {
          ...(deployment === undefined ? {} : { deployment }),
          ...(mergeRequest === undefined ? {} : { mergeRequest }),
          groupMembers: lookup.members,
        };
      } catch (error) {
        throw translate(error);
      } finally {
        end(); // also on the first failure, so sibling calls stop instead of running on after the answer is known
      }
    },
  };
}
