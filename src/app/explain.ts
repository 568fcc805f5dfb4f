/**
 * POST /v1/explain: the same verification and evaluation as exchange, but nothing is minted and the jti is not
 * consumed. Only rules whose project conditions hold for the caller are shown, so no team sees another's policy.
 */
import { asBrokerError, type ErrorCode } from '../core/errors.js';
import type { RuleEvaluation } from '../core/policy/evaluate.js';
import type { ExplainRecord } from '../ports.js';
import { evaluateCaller, parseGrantRequest, sha256Hex } from './authorize.js';
import type { BrokerDeps } from './deps.js';
import { chargeProject, writeAudit } from './exchange.js';
import { auditCaller, fitRecord, refusalFields } from './refusal.js';

export interface ExplainResult {
  readonly allowed: boolean;
  readonly rule: string | null;
  readonly code: ErrorCode | null;
  readonly evaluations: readonly RuleEvaluation[];
}

/** `deferDeploymentApprovals`: a deploy gate's job has no deployment yet; report that requirement as checked later. */
export async function explain(deps: BrokerDeps, input: { requestId: string; token: string; bodyText: string; deferDeploymentApprovals?: boolean }): Promise<ExplainResult> {
  const now = deps.clock.now();
  let known: { readonly event: 'explain'; readonly requestId: string; readonly tokenSha256: string } = { event: 'explain', requestId: input.requestId, tokenSha256: sha256Hex(input.token) };
  try {
    const verified = await deps.verifier.verify(input.token, now);
    known = { ...known, ...auditCaller(verified.issuer, verified.principal) };
    const request = parseGrantRequest(input.bodyText);
    // Explain can make GitLab API calls with the broker's token, so it spends the same per-project budget.
    await chargeProject(deps, verified, now);
    const { decision, visible } = await evaluateCaller(deps, verified.issuer, verified.principal, request, now, { explainOf: known.tokenSha256, deferDeploymentApprovals: input.deferDeploymentApprovals === true });
    const result: ExplainResult = {
      allowed: decision.allowed,
      rule: decision.allowed ? decision.rule.name : null,
      code: decision.allowed ? null : decision.code,
      evaluations: decision.evaluations.filter((evaluation) => visible.has(evaluation.rule)),
    };
    const record: ExplainRecord = { ...known, phase: 'explain', outcome: decision.allowed ? 'allowed' : 'denied', rule: result.rule, code: result.code ?? undefined };
    await writeAudit(deps.audit, record);
    return result;
  } catch (err) {
    const failure = asBrokerError(err, 'explain failed unexpectedly');
    if (failure !== err) deps.log.error('explain failed unexpectedly', { requestId: input.requestId, error: String(err) });
    if (failure.code !== 'audit_unavailable') {
      const record: ExplainRecord = fitRecord({ ...known, phase: 'explain', outcome: 'denied', rule: null, ...refusalFields(failure) });
      await writeAudit(deps.audit, record);
    }
    throw failure;
  }
}
