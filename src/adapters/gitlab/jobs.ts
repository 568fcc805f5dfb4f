/** Job liveness: `GET /projects/:id/jobs/:job_id` → `status`, through @gitbeaker/rest. */
import { Jobs } from '@gitbeaker/rest';
import { BrokerError } from '../../core/errors.js';
import type { GitLabPrincipal } from '../../core/claims.js';
import type { TrustedIssuer } from '../../ports.js';
import { gitbeakerHost, withDeadline } from './api-client.js';

export interface JobStatusSource {
  jobStatus(issuer: TrustedIssuer, principal: GitLabPrincipal, signal: AbortSignal): Promise<string>;
}

export function createGitLabJobStatusSource(options: { token: (issuer: TrustedIssuer) => Promise<string>; timeoutMs: number }): JobStatusSource {
  const clients = new Map<string, InstanceType<typeof Jobs>>();
  async function client(issuer: TrustedIssuer): Promise<InstanceType<typeof Jobs>> {
    let jobs = clients.get(issuer.issuer);
    if (!jobs) {
      const token = await options.token(issuer);
      jobs = new Jobs({ host: gitbeakerHost(issuer.apiUrl), token, queryTimeout: options.timeoutMs });
      clients.set(issuer.issuer, jobs);
    }
    return jobs;
  }
  return {
    async jobStatus(issuer, principal, signal) {
      // The job runs in job_project_id (differs from project_id only in fork pipelines).
      const project = principal.job_project_id ?? principal.project_id;
      const job = await withDeadline('job lookup', signal, async () => (await client(issuer)).show(project, Number(principal.job_id)));
      const status = (job as { status?: unknown }).status;
      if (typeof status !== 'string') throw new BrokerError('upstream_unavailable', 'GitLab job lookup returned no status');
      return status;
    },
  };
}
