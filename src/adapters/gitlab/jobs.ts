/**
 * Job liveness: `GET /projects/:id/jobs/:job_id` → `status`, through @gitbeaker/rest.
 *
 * With the broker's own requester (http-get.ts: node:http keep-alive, no redirects, the request's deadline), not
 * gitbeaker's default one, which puts every call through a client-side rate limiter of 3,000 calls a minute per
 * resource (past 50 exchanges/s sustained, exchanges queued until the fact deadline and failed with 503), compiles
 * ~20 glob patterns per call to pick that limiter, follows redirects and uses fetch (docs/performance.md).
 */
import { Jobs } from '@gitbeaker/rest';
import { BrokerError } from '../../core/errors.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import type { TrustedIssuer } from '../../ports.js';
import { gitbeakerHost, withDeadline } from './api-client.js';
import { createHttpGetRequester } from './http-get.js';

export interface JobStatusSource {
  jobStatus(issuer: TrustedIssuer, principal: GitLabPrincipal, signal: AbortSignal): Promise<string>;
}

export function createGitLabJobStatusSource(options: { token: (issuer: TrustedIssuer) => Promise<string>; timeoutMs: number }): JobStatusSource {
  const hosts = new Map<string, string>();
  /** A resource bound to this request's deadline (construction is cheap: no I/O, the token is read once per issuer). */
  async function client(issuer: TrustedIssuer, signal: AbortSignal): Promise<InstanceType<typeof Jobs>> {
    let host = hosts.get(issuer.issuer);
    if (host === undefined) {
      host = gitbeakerHost(issuer.apiUrl);
      hosts.set(issuer.issuer, host);
    }
    const token = await options.token(issuer);
    // queryTimeout null: the deadline is `signal` (gitbeaker would otherwise add an AbortSignal.timeout per call).
    return new Jobs({ host, token, camelize: false, queryTimeout: null, rateLimits: {}, requesterFn: createHttpGetRequester(signal) });
  }
  return {
    async jobStatus(issuer, principal, signal) {
      // The job runs in job_project_id (differs from project_id only in fork pipelines).
      const project = principal.job_project_id ?? principal.project_id;
      const job = await withDeadline('job lookup', signal, async () => (await client(issuer, signal)).show(project, Number(principal.job_id)));
      const status = (job as { status?: unknown }).status;
      if (typeof status !== 'string') throw new BrokerError('upstream_unavailable', 'GitLab job lookup returned no status');
      return status;
    },
  };
}
