/**
 * Who is changing the schema: the pipeline facts GitLab puts in the job's environment, and the rule and approvers of
 * the broker exchange that produced the credentials. They go into every history row, the lock owner and the request
 * tags, so a schema change traces back to a pipeline and the people who approved it.
 */
export interface PipelineFacts {
  readonly projectPath: string;
  readonly projectId: string;
  readonly pipelineId: string;
  readonly jobId: string;
  readonly commitSha: string;
  readonly ref: string;
  readonly user: string;
  readonly environment: string;
  readonly rule: string;
  readonly requestId: string;
  readonly approvers: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

const record = (value: unknown): Record<string, unknown> => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
const str = (value: unknown): string => (typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '');

/** Approver logins from the exchange output: deployment approvers, then merge-request approvers, each once. */
export function approversOf(exchange: unknown): string[] {
  const approvals = record(record(exchange).approvals);
  const deployment = Array.isArray(approvals.deployment) ? approvals.deployment.map((item) => str(record(item).user)) : [];
  const mergeRequest = record(approvals.mergeRequest);
  const approvedBy = Array.isArray(mergeRequest.approvedBy) ? mergeRequest.approvedBy.map(str) : [];
  return [...new Set([...deployment, ...approvedBy].filter(Boolean))];
}

/** The facts of this run from GitLab's predefined variables and the parsed `exchange.json` (when there is one). */
export function pipelineFacts(env: Env, exchange: unknown): PipelineFacts {
  const reply = record(exchange);
  return {
    projectPath: env.CI_PROJECT_PATH ?? '',
    projectId: env.CI_PROJECT_ID ?? '',
    pipelineId: env.CI_PIPELINE_ID ?? '',
    jobId: env.CI_JOB_ID ?? '',
    commitSha: env.CI_COMMIT_SHA ?? '',
    ref: env.CI_COMMIT_REF_NAME ?? '',
    user: env.GITLAB_USER_LOGIN ?? env.USER ?? '',
    environment: env.CI_ENVIRONMENT_NAME ?? '',
    rule: str(reply.rule),
    requestId: str(reply.requestId),
    approvers: approversOf(exchange),
  };
}

/** "group/app pipeline 12 job 34 (user alice)", or the local user outside CI. */
export function ownerName(facts: PipelineFacts): string {
  if (!facts.jobId) return `${facts.user || 'someone'} outside CI`;
  return `${facts.projectPath || 'project ?'} pipeline ${facts.pipelineId || '?'} job ${facts.jobId}${facts.user ? ` (user ${facts.user})` : ''}`;
}

/**
 * A Spanner request/transaction tag naming the pipeline and job. Spanner keeps printable ASCII up to 50 characters and
 * truncates the rest, so the identifying numbers come first.
 */
export function requestTag(facts: PipelineFacts, what: string): string {
  const tag = `oidc-broker p=${facts.pipelineId || '-'} j=${facts.jobId || '-'} ${what}`;
  return tag.replace(/[^\x20-\x7e]/g, '?').slice(0, 50);
}

/**
 * An updateDatabaseDdl operation id naming the pipeline, job and version (Spanner: [a-z][a-z0-9_]*, at most 128
 * characters, unique per database; the nonce keeps a retried version unique).
 */
export function ddlOperationId(facts: PipelineFacts, version: number, nonce: string): string {
  const digits = (value: string): string => value.replace(/\D/g, '') || '0';
  return `oidc_broker_p${digits(facts.pipelineId)}_j${digits(facts.jobId)}_v${version}_${nonce.toLowerCase().replace(/[^a-z0-9]/g, '')}`.slice(0, 128);
}
