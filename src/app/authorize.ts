/**
 * The steps exchange and explain share: verify the ID token, evaluate the policy in two phases, and fetch only the
 * GitLab facts that the candidate rules need, in parallel and under one deadline.
 */
import { createHash } from 'node:crypto';
import { subjectOf, type GitLabPrincipal, type PipelineSubject } from '../core/claims.js';
import { BrokerError } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import { decide, factNeeds, preEvaluate, type Decision, type Facts } from '../core/policy/evaluate.js';
import { findJsonKeyProblem } from '../core/strict-json.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import type { TrustedIssuer } from '../ports.js';
import type { BrokerDeps } from './deps.js';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Body text → grant request; malformed JSON, duplicate keys, unknown fields or grants → invalid_request. */
export function parseGrantRequest(bodyText: string): GrantRequest {
  const problem = findJsonKeyProblem(bodyText);
  if (problem) throw new BrokerError('invalid_request', problem.kind === 'syntax' ? 'the body is not valid JSON' : `the body has a ${problem.kind} key ${JSON.stringify(problem.key)}`);
  let data: unknown;
  try {
    data = JSON.parse(bodyText);
  } catch {
    throw new BrokerError('invalid_request', 'the body is not valid JSON');
  }
  const parsed = grantRequestSchema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new BrokerError('invalid_request', first ? `${first.path.join('.') || 'body'}: ${first.message}` : 'invalid body');
  }
  return parsed.data.grants;
}

export function currentPolicy(deps: BrokerDeps): CompiledPolicy {
  const policy = deps.policy();
  if (!policy) throw new BrokerError('not_ready', 'no policy is loaded');
  return policy;
}

/** Fields every audit record about a verified caller carries. */
export function auditSubject(issuer: TrustedIssuer, principal: GitLabPrincipal): Record<string, unknown> {
  return {
    issuer: issuer.issuer,
    project_id: principal.project_id,
    project_path: principal.project_path,
    job_project_id: principal.job_project_id,
    pipeline_id: principal.pipeline_id,
    pipeline_source: principal.pipeline_source,
    job_id: principal.job_id,
    user_id: principal.user_id,
    user_login: principal.user_login,
    ref_path: principal.ref_path,
    sha: principal.sha,
    environment: principal.environment,
    jti: principal.jti,
  };
}

export interface Authorization {
  readonly issuer: TrustedIssuer;
  readonly principal: GitLabPrincipal;
  readonly subject: PipelineSubject;
  readonly decision: Decision;
  readonly visible: ReadonlySet<string>;
}

export async function gatherFacts(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, needs: ReturnType<typeof factNeeds>): Promise<Facts> {
  const needsApprovals = needs.deploymentApprovals || needs.mergeRequestApprovals;
  if (!needs.jobStatus && !needsApprovals) return { approvals: {} };
  // A plain timer, not AbortSignal.timeout: Node 20 may collect an unreferenced timeout signal before it fires.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException('GitLab facts deadline', 'TimeoutError')), deps.factTimeoutMs);
  try {
    const [jobStatus, approvals] = await Promise.all([
      needs.jobStatus ? deps.facts.jobStatus(issuer, principal, deadline.signal) : undefined,
      needsApprovals ? deps.facts.approvals(issuer, principal, needs, deadline.signal) : {},
    ]);
    return jobStatus === undefined ? { approvals } : { jobStatus, approvals };
  } finally {
    clearTimeout(timer);
    deadline.abort(); // a failed lookup stops its siblings instead of letting them run to their own timeout
  }
}

/** Policy evaluation for an already verified caller. */
export async function evaluateCaller(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, request: GrantRequest, now: Date): Promise<Authorization> {
  const preliminary = preEvaluate(currentPolicy(deps), principal, request);
  const facts = await gatherFacts(deps, issuer, principal, factNeeds(preliminary));
  const decision = decide(preliminary, facts, now);
  return { issuer, principal, subject: subjectOf(principal), decision, visible: preliminary.visible };
}
