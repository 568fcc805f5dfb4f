/**
 * POST /v1/exchange as named steps: parse → verify → reserve jti → evaluate → audit intent → mint all (parallel,
 * all-or-nothing) → audit result → respond. Any failure after the reservation releases the jti, so a request that
 * returned nothing can be retried; every outcome writes an audit record; no audit, no credentials.
 */
import type { PipelineSubject } from '../core/claims.js';
import { assertNever, BrokerError, isBrokerError } from '../core/errors.js';
import { planMints, type MintPlan } from '../core/grants.js';
import type { DecisionApprovals } from '../core/policy/evaluate.js';
import type { AuditRecord, GoogleAccessToken, IssuedCertificate, MintContext, MintedToken, VerifiedIdToken } from '../ports.js';
import { auditSubject, evaluateCaller, parseGrantRequest, sha256Hex } from './authorize.js';
import type { BrokerDeps } from './deps.js';

export interface ExchangeInput {
  readonly requestId: string;
  readonly token: string;
  readonly bodyText: string;
}

export interface ExchangeResult {
  readonly requestId: string;
  readonly rule: string;
  readonly subject: PipelineSubject;
  readonly approvals: DecisionApprovals;
  readonly grants: {
    google?: GoogleAccessToken;
    linkerd?: IssuedCertificate;
    token?: MintedToken;
  };
}

type Minted = { kind: 'google'; value: GoogleAccessToken } | { kind: 'linkerd'; value: IssuedCertificate } | { kind: 'token'; value: MintedToken };

type Mint = (context: MintContext) => Promise<Minted>;

/**
 * The minter for one plan, resolved before the intent record so a grant with no minter configured is refused before
 * anything is written or minted (the only place that checks it).
 */
function minterFor(deps: BrokerDeps, plan: MintPlan): Mint {
  const { google, ca, signer } = deps;
  switch (plan.kind) {
    case 'google':
      if (!google) throw new BrokerError('upstream_unavailable', 'Google token minting is not configured');
      return async (context) => ({ kind: 'google', value: await google.mint(plan, context) });
    case 'linkerd':
      if (!ca) throw new BrokerError('upstream_unavailable', 'the Linkerd certificate authority is not configured');
      return async (context) => ({ kind: 'linkerd', value: await ca.issue(plan, context) });
    case 'token':
      return async (context) => ({ kind: 'token', value: await signer.sign(plan, context) });
    default:
      return assertNever(plan);
  }
}

/** What the audit log keeps of a credential: never the credential, only its hash and metadata. */
function mintedSummary(minted: Minted): Record<string, unknown> {
  switch (minted.kind) {
    case 'google':
      return { kind: 'google', serviceAccount: minted.value.serviceAccount, scopes: minted.value.scopes, expiresAt: minted.value.expiresAt, sha256: sha256Hex(minted.value.accessToken) };
    case 'linkerd':
      return { kind: 'linkerd', identity: minted.value.identity, spiffeId: minted.value.spiffeId, serialNumber: minted.value.serialNumber, expiresAt: minted.value.expiresAt };
    case 'token':
      return { kind: 'token', expiresAt: minted.value.expiresAt, sha256: sha256Hex(minted.value.token) };
    default:
      return assertNever(minted);
  }
}

function replayKey(verified: VerifiedIdToken): string {
  return `${verified.issuer.issuer}\n${verified.principal.jti}`;
}

export async function exchange(deps: BrokerDeps, input: ExchangeInput): Promise<ExchangeResult> {
  const now = deps.clock.now();
  // One record, filled in as the steps learn more and written at each phase (the sink serialises it synchronously),
  // instead of a fresh spread per phase: this object was the largest allocation on the exchange path.
  const record: AuditRecord & Record<string, unknown> = { event: 'exchange', phase: 'denied', requestId: input.requestId, outcome: 'pending', tokenSha256: sha256Hex(input.token) };
  let reservedKey: string | undefined;
  try {
    const request = parseGrantRequest(input.bodyText);
    record.grantsRequested = Object.keys(request);
    const verified = await deps.verifier.verify(input.token, now);
    Object.assign(record, auditSubject(verified.issuer, verified.principal));
    const budget = deps.rateLimiter.take(`${verified.issuer.issuer}\n${verified.principal.project_id}`, now);
    if (!budget.ok) throw new BrokerError('rate_limited', 'this project is over its exchange rate limit', { retryAfter: budget.retryAfterSeconds });
    const key = replayKey(verified);
    const holdUntil = new Date((verified.principal.exp + deps.clockToleranceSeconds + 60) * 1000);
    if (!(await deps.replay.reserve(key, holdUntil))) throw new BrokerError('token_replayed', 'this ID token was already exchanged');
    reservedKey = key;

    const authorization = await evaluateCaller(deps, verified.issuer, verified.principal, request, now);
    const { decision } = authorization;
    if (!decision.allowed) throw new BrokerError(decision.code, decision.detail, { reasons: decision.reasons });
    const plans = planMints(decision.rule.grant, request, verified.principal.exp, now);
    const mints = plans.map((plan) => minterFor(deps, plan));
    record.rule = decision.rule.name;
    record.approvals = decision.approvals;

    record.phase = 'intent';
    record.plans = plans.map((plan) => plan.kind);
    await deps.audit.write(record);
    record.phase = 'result';
    record.plans = undefined;
    const mintContext: MintContext = { requestId: input.requestId, rule: decision.rule.name, subject: authorization.subject, principal: verified.principal, now };
    const minted = await Promise.all(mints.map((mint) => mint(mintContext)));
    record.outcome = 'allowed';
    record.minted = minted.map(mintedSummary);
    await deps.audit.write(record);
    reservedKey = undefined; // returned: the jti stays spent

    const grants: ExchangeResult['grants'] = {};
    for (const item of minted) {
      if (item.kind === 'google') grants.google = item.value;
      else if (item.kind === 'linkerd') grants.linkerd = item.value;
      else grants.token = item.value;
    }
    return { requestId: input.requestId, rule: decision.rule.name, subject: authorization.subject, approvals: decision.approvals, grants };
  } catch (err) {
    const failure = isBrokerError(err) ? err : new BrokerError('upstream_unavailable', 'the exchange failed unexpectedly', { cause: err });
    if (!isBrokerError(err)) deps.log.error('exchange failed unexpectedly', { requestId: input.requestId, error: String(err) });
    else deps.log.warn('exchange refused', { requestId: input.requestId, code: failure.code, detail: failure.detail, cause: causeText(failure), tokenSha256: record.tokenSha256 });
    if (reservedKey !== undefined) await deps.replay.release(reservedKey).catch(() => undefined);
    if (failure.code !== 'audit_unavailable') {
      record.outcome = 'denied';
      record.code = failure.code;
      record.detail = failure.detail;
      record.reasons = failure.reasons;
      record.cause = causeText(failure);
      record.minted = undefined;
      try {
        await deps.audit.write(record);
      } catch (auditErr) {
        throw isBrokerError(auditErr) ? auditErr : new BrokerError('audit_unavailable', 'the audit record could not be written', { cause: auditErr });
      }
    }
    throw failure;
  }
}

/** A short description of an upstream cause for the audit log (never the token, which no error carries). */
export function causeText(err: BrokerError): string | undefined {
  const cause = err.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? `${cause.name}: ${cause.message}`.slice(0, 500) : String(cause).slice(0, 500);
}
