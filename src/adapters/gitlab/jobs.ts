/**
 * Job liveness: `GET /projects/:id/jobs/:job_id` → `status`, through @gitbeaker/rest.
 *
 * With the broker's own requester (http-get.ts: node:http keep-alive, no redirects, the request's deadline), not
 * gitbeaker's default one, which puts every call through a client-side rate limiter of 3,000 calls a minute per
 * resource (past 50 exchanges/s sustained, exchanges queued until the fact deadline and failed with 503), compiles
 * ~20 glob patterns per call to pick that limiter, follows redirects and uses fetch (docs/performance.md).
 */
import { Jobs } from '@gitbeaker/rest';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import type { TrustedIssuer } from '../../ports.js';
import { gitbeakerHost } from './api-client.js';
import { createHttpGetRequester } from './http-get.js';

export interface JobStatusSource {
  jobStatus(issuer: TrustedIssuer, principal: GitLabPrincipal, signal: AbortSignal): Promise<string>;
}

export function createGitLabJobStatusSource(options: { token: (issuer: TrustedIssuer) => Promise<string>; timeoutMs: number }): JobStatusSource {
  // One client per issuer, built once: the per-request deadline is raced by the caller, and the socket itself is
  // bounded by timeoutMs. Building a gitbeaker resource per request was a third of the job lookup's allocation.
  // The entry is the pending build until it resolves, then the client itself, so later lookups need no await.
  type JobsClient = InstanceType<typeof Jobs>;
  const clients = new Map<string, Promise<JobsClient> | JobsClient>();
  function client(issuer: TrustedIssuer): Promise<JobsClient> | JobsClient {
    let entry = clients.get(issuer.issuer);
    if (entry === undefined) {
      const pending = options.token(issuer).then(
        // queryTimeout null: gitbeaker would otherwise add an AbortSignal.timeout per call.
        (token) => {
          const jobs = new Jobs({ host: gitbeakerHost(issuer.apiUrl), token, camelize: false, queryTimeout: null, rateLimits: {}, requesterFn: createHttpGetRequester(options.timeoutMs) });
          clients.set(issuer.issuer, jobs);
          return jobs;
        },
      );
      pending.catch(() => clients.delete(issuer.issuer));
      clients.set(issuer.issuer, pending);
      entry = pending;
    }
    return entry;
  }
  return {
    async jobStatus(issuer, principal, signal) {
      // The caller races its deadline (gatherFacts) and the socket is bounded by timeoutMs, so no abort listener here.
      if (signal.aborted) throw new BrokerError('upstream_unavailable', 'GitLab job lookup: deadline passed', { cause: signal.reason });
      // The job runs in job_project_id (differs from project_id only in fork pipelines).
      const project = principal.job_project_id ?? principal.project_id;
      const show = (jobs: JobsClient) => jobs.show(project, Number(principal.job_id));
      let job: unknown;
      try {
        const jobs = client(issuer);
        job = await (jobs instanceof Promise ? jobs.then(show) : show(jobs));
      } catch (err) {
        throw isBrokerError(err) ? err : new BrokerError('upstream_unavailable', 'GitLab job lookup failed', { cause: err });
      }
      const status = (job as { status?: unknown }).status;
      if (typeof status !== 'string') throw new BrokerError('upstream_unavailable', 'GitLab job lookup returned no status');
      return status;
    },
  };
}
