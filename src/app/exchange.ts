/**
 * POST /v1/exchange as named steps: verify → parse → reserve jti → charge the project's budget → evaluate → audit
 * intent → mint all (parallel, all-or-nothing) → sign the refresh session → audit result → respond. The body is parsed
 * only for a verified caller, and only a request that reaches policy evaluation is charged (a replay is not). Any
 * failure after the reservation releases the jti, so a request that returned nothing can be retried; every outcome
 * writes an audit record; no audit, no credentials.
 */
import type { PipelineSubject } from '../core/claims.js';
import { asBrokerError, BrokerError, isBrokerError } from '../core/errors.js';
import { GRANTS, planMints, sessionScopes, type GrantKind, type MintedOf, type MintPlan, type MintPlanOf } from '../core/grants.js';
import type { DecisionApprovals } from '../core/policy/evaluate.js';
import type { AuditSink, DeniedRecord, GrantMinters, IntentRecord, MintContext, ResultRecord, SignedSession, VerifiedIdToken } from '../ports.js';
import { evaluateCaller, parseGrantRequest, sha256Hex } from './authorize.js';
import type { BrokerDeps } from './deps.js';
import { auditCaller, causeText, fitRecord, refusalFields } from './refusal.js';

export interface ExchangeInput {
  readonly requestId: string;
  readonly token: string;
  readonly bodyText: string;
}

/** The minted credentials, by kind. */
export type MintedGrants = { -readonly [K in GrantKind]?: MintedOf<K> };

export interface ExchangeResult {
  readonly requestId: string;
  readonly rule: string;
  readonly subject: PipelineSubject;
  readonly approvals: DecisionApprovals;
  readonly grants: MintedGrants;
  /** For POST /v1/refresh (exchange only). */
  readonly session?: SignedSession;
}

interface Minted {
  readonly kind: GrantKind;
  readonly value: unknown;
  readonly summary: Readonly<Record<string, unknown>>;
}

type Mint = (context: MintContext, deadline: AbortSignal | undefined) => Promise<Minted>;

/**
 * The minter for one plan, resolved before the intent record. The broker refuses to start (or reload) a policy that
 * grants a kind it has no minter for, so a missing one here is a bug, not a caller's or an upstream's fault.
 */
function minterFor<K extends GrantKind>(minters: GrantMinters, kind: K, plan: MintPlanOf<K>): Mint {
  const minter = minters[kind];
  if (!minter) throw new TypeError(`no minter for the ${kind} grant`);
  return async (context, deadline) => {
    const value = await minter.mint(plan, context, deadline);
    return { kind, value, summary: GRANTS[kind].auditSummary(value, sha256Hex) };
  };
}

/**
 * Mint every plan in parallel, all or nothing (the first failure fails the whole request), the kinds that call out
 * under one deadline. Returns the credentials by kind and what the audit log keeps of each.
 */
export async function mintAll(deps: BrokerDeps, plans: readonly MintPlan[], context: MintContext): Promise<{ grants: MintedGrants; summaries: Readonly<Record<string, unknown>>[] }> {
  const mints = plans.map((plan) => minterFor(deps.minters, plan.kind, plan));
  // Only a kind that calls out (Google) needs a deadline; the local ones would pay for a timer they never use.
  const deadline = plans.some((plan) => GRANTS[plan.kind].mintsUpstream) ? AbortSignal.timeout(deps.factTimeoutMs) : undefined;
  const minted = await Promise.all(mints.map((mint) => mint(context, deadline)));
  const grants: MintedGrants = {};
  for (const item of minted) (grants as Record<GrantKind, unknown>)[item.kind] = item.value; // each value is MintedOf<its kind>
  return { grants, summaries: minted.map((item) => item.summary) };
}

function replayKey(verified: VerifiedIdToken): string {
  return `${verified.issuer.issuer}\n${verified.principal.jti}`;
}

/** Writes a record; a sink failure becomes audit_unavailable (with its cause) whatever the sink threw. */
export async function writeAudit(audit: AuditSink, record: Parameters<AuditSink['write']>[0]): Promise<void> {
  try {
    await audit.write(record);
  } catch (err) {
    throw isBrokerError(err) && err.code === 'audit_unavailable' ? err : new BrokerError('audit_unavailable', 'the audit record could not be written', { cause: err });
  }
}

export async function exchange(deps: BrokerDeps, input: ExchangeInput): Promise<ExchangeResult> {
  const now = deps.clock.now();
  // What the records of this request share, learnt step by step; each record is built once, whole, when written.
  const tokenSha256 = sha256Hex(input.token);
  let grantsRequested: readonly string[] | undefined;
  let caller: Readonly<Record<string, unknown>> | undefined;
  let rule: string | undefined;
  let reservedKey: string | undefined;
  try {
    const verified = await deps.verifier.verify(input.token, now);
    caller = auditCaller(verified.issuer, verified.principal);
    const request = parseGrantRequest(input.bodyText);
    grantsRequested = Object.keys(request);
    const key = replayKey(verified);
    const holdUntil = new Date((verified.principal.exp + deps.clockToleranceSeconds + 60) * 1000);
    if (!(await deps.replay.reserve(key, holdUntil))) throw new BrokerError('token_replayed', 'this ID token was already exchanged');
    reservedKey = key;
    await chargeProject(deps, verified, now);

    const authorization = await evaluateCaller(deps, verified.issuer, verified.principal, request, now);
    const { decision } = authorization;
    if (!decision.allowed) throw new BrokerError(decision.code, decision.detail, { reasons: decision.reasons });
    const ruleName = (rule = decision.rule.name);
    const plans = planMints(decision.rule.grant, request, verified.principal.exp, now);
    for (const plan of plans) if (!deps.minters[plan.kind]) throw new TypeError(`no minter for the ${plan.kind} grant`);

    const intent: IntentRecord = {
      event: 'exchange', phase: 'intent', requestId: input.requestId, outcome: 'pending', tokenSha256, grantsRequested, ...caller,
      rule: ruleName, approvals: decision.approvals, plans: plans.map((plan) => plan.kind),
    };
    await writeAudit(deps.audit, intent);
    const mintContext: MintContext = { requestId: input.requestId, rule: ruleName, subject: authorization.subject, principal: verified.principal, now };
    const { grants, summaries } = await mintAll(deps, plans, mintContext);
    const session = deps.signer.signSession({ requestId: input.requestId, rule: ruleName, grants: sessionScopes(plans), principal: verified.principal }, now);
    const result: ResultRecord = {
      event: 'exchange', phase: 'result', requestId: input.requestId, outcome: 'allowed', tokenSha256, grantsRequested, ...caller,
      rule: ruleName, approvals: decision.approvals, minted: summaries, session: { sha256: sha256Hex(session.token), expiresAt: session.expiresAt },
    };
    await writeAudit(deps.audit, result);
    reservedKey = undefined; // returned: the jti stays spent
    return { requestId: input.requestId, rule: ruleName, subject: authorization.subject, approvals: decision.approvals, grants, session };
  } catch (err) {
    const failure = asBrokerError(err, 'the exchange failed unexpectedly');
    if (failure !== err) deps.log.error('exchange failed unexpectedly', { requestId: input.requestId, error: String(err) });
    else deps.log.warn('exchange refused', { requestId: input.requestId, code: failure.code, detail: failure.detail, cause: causeText(failure), tokenSha256 });
    if (reservedKey !== undefined) await deps.replay.release(reservedKey).catch(() => undefined);
    if (failure.code !== 'audit_unavailable') {
      const denied: DeniedRecord = fitRecord({
        event: 'exchange', phase: 'denied', requestId: input.requestId, outcome: 'denied', tokenSha256, grantsRequested, ...caller,
        rule, ...refusalFields(failure),
      });
      await writeAudit(deps.audit, denied);
    }
    throw failure;
  }
}

/**
 * Spends one unit of the project's budget: called once the request will reach policy evaluation (which may call the
 * GitLab API with the broker's token), so malformed requests and replays of a spent token cost the project nothing.
 */
export async function chargeProject(deps: BrokerDeps, verified: VerifiedIdToken, now: Date): Promise<void> {
  const budget = await deps.rateLimiter.take(`${verified.issuer.issuer}\n${verified.principal.project_id}`, now);
  if (!budget.ok) throw new BrokerError('rate_limited', 'this project is over its rate limit', { retryAfter: budget.retryAfterSeconds });
}
