/**
 * The broker's one GitLab API client: job liveness on each exchange and approval facts for the rules that need them,
 * through @gitbeaker/rest's typed endpoints with one requester (gitbeaker-requester.ts), one paginator (paginate.ts),
 * one transport whose connection pools it owns and closes (http-get.ts), and one translator of failures
 * (translate.ts). Each call runs under the request's deadline, which the use case creates (gatherFacts); the
 * transport bounds each wait by the issuer's request timeout. Every answer is validated before use.
 *
 * Why our requester and not gitbeaker's: its default puts every call through a client-side rate limiter of 3,000
 * calls a minute per resource (past 50 exchanges/s sustained, exchanges queued until the fact deadline and failed
 * with 503), compiles ~20 glob patterns per call to pick that limiter, follows redirects and uses fetch
 * (docs/performance.md).
 */
import { Commits, Deployments, GroupMembers, Jobs, MergeRequestApprovals, MergeRequests, Users } from '@gitbeaker/rest';
import type { ApprovalFacts } from '../../core/approvals.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import { BrokerError } from '../../core/errors.js';
import type { FactNeeds } from '../../core/policy/evaluate.js';
import type { FactSource, RequestSignal, TrustedIssuer } from '../../ports.js';
import { gitbeakerHost } from './api-client.js';
import * as api from './approval-responses.js';
import { lookupApprovals, type ApprovalCaches, type ApprovalResources } from './approvals.js';
import { createRequesterFn, pathId, withSignal } from './gitbeaker-requester.js';
import { createTransport } from './http-get.js';
import { createLookupBudget, type LookupBudgetOptions } from './lookup-budget.js';
import { parseGitLab, translateGitLabError } from './translate.js';
import { TtlCache } from './ttl-cache.js';

export interface GitLabClientOptions {
  /** The broker's read_api token for an issuer ('' for none). Read once per issuer; never logged, never in an error. */
  readonly token: (issuer: TrustedIssuer) => Promise<string>;
  /** Bound on the wait for a GitLab answer's headers and on each gap in its body, unless the issuer has its own. */
  readonly requestTimeoutMs: number;
  /** Issuer URL → its own request timeout (config `gitlab[].requestTimeout`). */
  readonly issuerRequestTimeoutMs?: ReadonlyMap<string, number>;
  /**
   * Approval lookups, and job lookups after a token's first, per project and window (config
   * `limits.gitlabLookupsPerProject`); default 60 a minute.
   */
  readonly lookupBudget?: LookupBudgetOptions;
  /** How long a (group, user) membership or a user profile is reused; default 30 s, 0 disables. */
  readonly membershipTtlMs?: number;
  /** Milliseconds since the epoch, for cache expiry and the budget's windows; default Date.now. */
  readonly clock?: () => number;
}

/** The GitLab facts the use cases need, and the shutdown of the client's connections. */
export interface GitLabClient extends FactSource {
  /** Close the connection pools; later calls fail as unreachable. The composition root calls it on shutdown. */
  close(): Promise<void>;
}

export const DEFAULT_LOOKUP_BUDGET: LookupBudgetOptions = { perProject: 60, windowMs: 60_000 };

interface IssuerApi extends ApprovalResources {
  readonly jobs: Jobs;
}

/** The project the job runs in (job_project_id differs from project_id only in fork pipelines). */
function jobProject(principal: GitLabPrincipal): string {
  return principal.job_project_id ?? principal.project_id;
}

/**
 * @example const gitlab = createGitLabClient({ token: createTokenReader(files), requestTimeoutMs: 5000 }); … await gitlab.close();
 */
export function createGitLabClient(options: GitLabClientOptions): GitLabClient {
  const clock = options.clock ?? Date.now;
  const transport = createTransport();
  const budgetOptions = options.lookupBudget ?? DEFAULT_LOOKUP_BUDGET;
  const budget = createLookupBudget(budgetOptions);
  // Tokens (issuer and jti) whose job was looked up within the window. A token's first lookup is free, so exchanges
  // are never throttled by the budget however busy the project; a denied exchange releases its jti and explain never
  // spends it, so each later lookup of the same token is charged like an approval lookup. Bounded like the caches:
  // when full, expired entries go first, then all (a dropped token gets one more free lookup, no more).
  const lookedUpTokens = new TtlCache<true>(budgetOptions.windowMs, clock);
  const ttl = options.membershipTtlMs ?? 30_000;
  const caches: ApprovalCaches = { memberships: new TtlCache<boolean>(ttl, clock), profiles: new TtlCache<api.ApiUser | null>(ttl, clock) };
  // One set of resources per issuer, built once its token is read: a resource per request was a third of the job
  // lookup's allocation. A failed token read is forgotten, so the next request tries again.
  const apis = new Map<string, Promise<IssuerApi>>();

  async function buildApi(issuer: TrustedIssuer): Promise<IssuerApi> {
    const requestTimeoutMs = options.issuerRequestTimeoutMs?.get(issuer.issuer) ?? options.requestTimeoutMs;
    const requester = { transport, token: await options.token(issuer), requestTimeoutMs };
    // No token option: the requester sends it. queryTimeout null: the request's signal is the only deadline.
    const config = { host: gitbeakerHost(issuer.apiUrl), camelize: false as const, queryTimeout: null, rateLimits: {}, requesterFn: createRequesterFn({ ...requester, coalesce: true }) };
    return {
      jobs: new Jobs({ ...config, requesterFn: createRequesterFn({ ...requester, coalesce: false }) }),
      deployments: new Deployments(config),
      commits: new Commits(config),
      mergeRequests: new MergeRequests(config),
      mergeRequestApprovals: new MergeRequestApprovals(config),
      groupMembers: new GroupMembers(config),
      users: new Users(config),
    };
  }

  function apiFor(issuer: TrustedIssuer): Promise<IssuerApi> {
    let pending = apis.get(issuer.issuer);
    if (pending === undefined) {
      pending = buildApi(issuer);
      pending.catch(() => apis.delete(issuer.issuer));
      apis.set(issuer.issuer, pending);
    }
    return pending;
  }

  /** Spends the project's budget when this token's job was already looked up within the window; throws when none is left. */
  function chargeRepeatedJobLookup(issuer: TrustedIssuer, principal: GitLabPrincipal): void {
    const tokenKey = `${issuer.issuer}\n${principal.jti}`;
    if (lookedUpTokens.get(tokenKey) === undefined) {
      lookedUpTokens.set(tokenKey, true);
      return;
    }
    spendLookup(issuer, principal, 'this project is over its budget of GitLab lookups for repeated job tokens');
  }

  function spendLookup(issuer: TrustedIssuer, principal: GitLabPrincipal, refusal: string): void {
    const spent = budget.take(`${issuer.issuer}\n${principal.project_id}`, clock());
    if (!spent.ok) throw new BrokerError('rate_limited', refusal, { retryAfter: spent.retryAfterSeconds });
  }

  return {
    async jobStatus(issuer, principal, signal) {
      if (budgetOptions.perProject > 0) chargeRepeatedJobLookup(issuer, principal);
      try {
        const { jobs } = await apiFor(issuer);
        const body = await jobs.show(jobProject(principal), pathId(principal.job_id), withSignal({}, signal));
        return parseGitLab(api.jobSchema, body, 'projects/:id/jobs/:job_id').status;
      } catch (error) {
        throw translateGitLabError(error, 'GitLab job lookup');
      }
    },

    async approvals(issuer: TrustedIssuer, principal: GitLabPrincipal, needs: FactNeeds, signal: RequestSignal): Promise<ApprovalFacts> {
      if (!needs.deploymentApprovals && !needs.mergeRequestApprovals) return {};
      spendLookup(issuer, principal, 'this project is over its budget of GitLab approval lookups');
      try {
        return await lookupApprovals(await apiFor(issuer), caches, issuer.apiUrl, principal, needs, signal);
      } catch (error) {
        throw translateGitLabError(error, 'GitLab approvals lookup');
      }
    },

    close: () => transport.close(),
  };
}
