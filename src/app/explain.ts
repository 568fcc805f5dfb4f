/**
 * POST /v1/explain: the same verification and evaluation as exchange, but nothing is minted and the jti is not
 * consumed. Only rules whose project conditions hold for the caller are shown, so no team sees another's policy.
 */
import { BrokerError, isBrokerError } from '../core/errors.js';
import type { RuleEvaluation } from '../core/policy/evaluate.js';
import { auditSubject, evaluateCaller, parseGrantRequest, sha256Hex } from './authorize.js';
import type { BrokerDeps } from './deps.js';
import { causeText } from './exchange.js';

export interface ExplainResult {
  readonly allowed: boolean;
  readonly rule: string | null;
  readonly code: string | null;
  readonly evaluations: readonly RuleEvaluation[];
}

/** `deferDeploymentApprovals`: a deploy gate's job has no deployment yet; report that requirement as checked later. */
export async function explain(deps: BrokerDeps, input: { requestId: string; token: string; bodyText: string; deferDeploymentApprovals?: boolean }): Promise<ExplainResult> {
  const now = deps.clock.now();
  const base = { event: 'explain' as const, phase: 'explain' as const, requestId: input.requestId, tokenSha256: sha256Hex(input.token) };
  let context: Record<string, unknown> = {};
  try {
    const request = parseGrantRequest(input.bodyText);
    const verified = await deps.verifier.verify(input.token, now);
    context = auditSubject(verified.issuer, verified.principal);
    // Explain can make GitLab API calls with the broker's token, so it spends the same per-project budget.
    const budget = deps.rateLimiter.take(`${verified.issuer.issuer}\n${verified.principal.project_id}`, now);
    if (!budget.ok) throw new BrokerError('rate_limited', 'this project is over its rate limit', { retryAfter: budget.retryAfterSeconds });
    const { decision, visible } = await evaluateCaller(deps, verified.issuer, verified.principal, request, now, { deferDeploymentApprovals: input.deferDeploymentApprovals === true });
    const result: ExplainResult = {
      allowed: decision.allowed,
      rule: decision.allowed ? decision.rule.name : null,
      code: decision.allowed ? null : decision.code,
      evaluations: decision.evaluations.filter((evaluation) => visible.has(evaluation.rule)),
    };
    await deps.audit.write({ ...base, ...context, outcome: decision.allowed ? 'allowed' : 'denied', rule: result.rule, code: result.code ?? undefined });
    return result;
  } catch (err) {
    const failure = isBrokerError(err) ? err : new BrokerError('upstream_unavailable', 'explain failed unexpectedly', { cause: err });
    if (failure.code !== 'audit_unavailable') {
      await deps.audit.write({ ...base, ...context, outcome: 'error', code: failure.code, detail: failure.detail, cause: causeText(failure) }).catch((auditErr: unknown) => {
        throw isBrokerError(auditErr) ? auditErr : new BrokerError('audit_unavailable', 'the audit record could not be written');
      });
    }
    throw failure;
  }
}
