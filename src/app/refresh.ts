/**
 * POST /v1/refresh as named steps: parse → verify the session → narrow the request to what the exchange granted →
 * re-evaluate the caller (approvals, the same rule) and check the job is running (even when the rule does not ask it of an
 * exchange) → audit intent → mint all → audit result → respond.
 * A refresh never widens the original exchange: another kind, scope or audience is 403 grant_not_allowed. It spends no
 * jti (the session is the long-lived credential, and it ends when the ID token would have). Every record names the
 * exchange that opened the session (`originalRequestId`).
 */
import { asBrokerError, BrokerError } from '../core/errors.js';
import { narrowToSession, planMints } from '../core/grants.js';
import type { DeniedRecord, IntentRecord, MintContext, ResultRecord } from '../ports.js';
import { evaluateCaller, gatherFacts, parseGrantRequest, sha256Hex } from './authorize.js';
import type { BrokerDeps } from './deps.js';
import { chargeProject, mintAll, writeAudit, type ExchangeResult } from './exchange.js';
import { auditCaller, fitRecord, refusalFields } from './refusal.js';

export interface RefreshInput {
  readonly requestId: string;
  /** The session token from the exchange response. */
  readonly token: string;
  readonly bodyText: string;
}

export async function refresh(deps: BrokerDeps, input: RefreshInput): Promise<ExchangeResult> {
  const now = deps.clock.now();
  const tokenSha256 = sha256Hex(input.token);
  const common = { event: 'refresh' as const, requestId: input.requestId, tokenSha256 };
  let grantsRequested: readonly string[] | undefined;
  let originalRequestId: string | undefined;
  let caller: Readonly<Record<string, unknown>> | undefined;
  let rule: string | undefined;
  try {
    const asked = parseGrantRequest(input.bodyText);
    grantsRequested = Object.keys(asked);
    const session = await deps.signer.verifySession(input.token, now);
    originalRequestId = session.requestId;
    rule = session.rule;
    const issuer = deps.issuers.find((entry) => entry.issuer === session.principal.iss);
    if (!issuer) throw new BrokerError('invalid_token', 'the session names an issuer this broker no longer trusts');
    caller = auditCaller(issuer, session.principal);

    const { request, refused } = narrowToSession(session.grants, asked);
    if (refused.length > 0) {
      const reasons = refused.map((check) => ({ rule: session.rule, name: check.name, detail: check.detail }));
      throw new BrokerError('grant_not_allowed', `rule ${session.rule}: ${refused.map((check) => check.detail).join('; ')}`, { reasons });
    }
    await chargeProject(deps, { issuer, principal: session.principal }, now);
    const authorization = await evaluateCaller(deps, issuer, session.principal, request, now);
    const { decision } = authorization;
    if (!decision.allowed) throw new BrokerError(decision.code, decision.detail, { reasons: decision.reasons });
    if (decision.rule.name !== session.rule) throw new BrokerError('policy_denied', `rule ${session.rule}, which allowed the exchange, no longer applies to this job`);
    // A session serves a running job, whatever the rule requires of an exchange: once the job is over, nothing more.
    if (!decision.rule.require.jobRunning) {
      const { jobStatus } = await gatherFacts(deps, issuer, session.principal, { jobStatus: true, deploymentApprovals: false, mergeRequestApprovals: false, groups: [] });
      if (jobStatus !== 'running') throw new BrokerError('job_not_running', `the job is ${jobStatus ?? 'in an unknown state'}: a session ends with its job`);
    }
    const plans = planMints(decision.rule.grant, request, session.principal.exp, now);

    const intent: IntentRecord = {
      ...common, phase: 'intent', outcome: 'pending', originalRequestId, grantsRequested, ...caller,
      rule: session.rule, approvals: decision.approvals, plans: plans.map((plan) => plan.kind),
    };
    await writeAudit(deps.audit, intent);
    const context: MintContext = { requestId: input.requestId, rule: session.rule, subject: authorization.subject, principal: session.principal, now };
    const { grants, summaries } = await mintAll(deps, plans, context);
    const result: ResultRecord = {
      ...common, phase: 'result', outcome: 'allowed', originalRequestId, grantsRequested, ...caller,
      rule: session.rule, approvals: decision.approvals, minted: summaries,
    };
    await writeAudit(deps.audit, result);
    return { requestId: input.requestId, rule: session.rule, subject: authorization.subject, approvals: decision.approvals, grants };
  } catch (err) {
    const failure = asBrokerError(err, 'the refresh failed unexpectedly');
    if (failure !== err) deps.log.error('refresh failed unexpectedly', { requestId: input.requestId, error: String(err) });
    if (failure.code !== 'audit_unavailable') {
      const denied: DeniedRecord = fitRecord({
        ...common, phase: 'denied', outcome: 'denied', originalRequestId, grantsRequested, ...caller, rule, ...refusalFields(failure),
      });
      await writeAudit(deps.audit, denied);
    }
    throw failure;
  }
}
