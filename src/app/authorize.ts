/**
 * The steps exchange and explain share: verify the ID token, evaluate the policy in two phases, and fetch only the
 * GitLab facts that the candidate rules need, in parallel and under one deadline.
 */
import { hash } from 'node:crypto';
import { subjectOf, type GitLabPrincipal, type PipelineSubject } from '../core/claims.js';
import { BrokerError } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import { decide, factNeeds, preEvaluate, type Decision, type EvaluationOptions, type Facts } from '../core/policy/evaluate.js';
import { parseStrictJson } from '../core/strict-json.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import type { TrustedIssuer } from '../ports.js';
import type { BrokerDeps } from './deps.js';

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex'); // one-shot: no Hash object per call
}

/** Body text → grant request; malformed JSON, duplicate keys, unknown fields or grants → invalid_request. */
export function parseGrantRequest(bodyText: string): GrantRequest {
  const { value: data, problem } = parseStrictJson(bodyText);
  if (problem) throw new BrokerError('invalid_request', problem.kind === 'syntax' ? 'the body is not valid JSON' : `the body has a ${problem.kind} key ${JSON.stringify(problem.key)}`);
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

/** Handed to fact sources when nothing needs to stop them early: a job lookup ends on its own socket timeout. */
const NEVER_ABORTED = new AbortController().signal;

export async function gatherFacts(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, needs: ReturnType<typeof factNeeds>): Promise<Facts> {
  const needsApprovals = needs.deploymentApprovals || needs.mergeRequestApprovals;
  if (!needs.jobStatus && !needsApprovals) return { approvals: {} };
  // The deadline is one timer raced here. An AbortController (its signal, listeners and the DOMException of each
  // abort) was ~10 % of an exchange's CPU (docs/performance.md), so it exists only for the approvals lookup, whose
  // paginated calls must stop when the answer is known or the time is up.
  const controller = needsApprovals ? new AbortController() : undefined;
  const signal = controller?.signal ?? NEVER_ABORTED;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BrokerError('upstream_unavailable', 'GitLab lookups: deadline passed', { cause: new Error(`no answer in ${deps.factTimeoutMs} ms`) })), deps.factTimeoutMs);
  });
  try {
    if (!needsApprovals) return { jobStatus: await Promise.race([deps.facts.jobStatus(issuer, principal, signal), expired]), approvals: {} };
    const [jobStatus, approvals] = await Promise.race([
      Promise.all([
        needs.jobStatus ? deps.facts.jobStatus(issuer, principal, signal) : undefined,
        deps.facts.approvals(issuer, principal, needs, signal),
      ]),
      expired,
    ]);
    return jobStatus === undefined ? { approvals } : { jobStatus, approvals };
  } catch (err) {
    controller?.abort(err); // a failed lookup or the deadline stops the siblings instead of letting them run on
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Policy evaluation for an already verified caller. */
export async function evaluateCaller(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, request: GrantRequest, now: Date, options: EvaluationOptions = {}): Promise<Authorization> {
  const preliminary = preEvaluate(currentPolicy(deps), principal, request);
  const facts = await gatherFacts(deps, issuer, principal, factNeeds(preliminary, options));
  const decision = decide(preliminary, facts, now, options);
  return { issuer, principal, subject: subjectOf(principal), decision, visible: preliminary.visible };
}
