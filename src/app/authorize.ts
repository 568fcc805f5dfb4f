/**
 * The steps exchange and explain share: verify the ID token, evaluate the policy in two phases, and fetch only the
 * GitLab facts that the candidate rules need, in parallel and under one deadline (one RequestDeadline per request).
 */
import { hash } from 'node:crypto';
import { subjectOf, type GitLabPrincipal, type PipelineSubject } from '../core/claims.js';
import { echo, quote } from '../core/echo.js';
import { BrokerError } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import { decide, factNeeds, preEvaluate, type Decision, type EvaluationOptions, type FactNeeds, type Facts } from '../core/policy/evaluate.js';
import { parseStrictJson } from '../core/strict-json.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import type { TrustedIssuer } from '../ports.js';
import { RequestDeadline } from './deadline.js';
import type { BrokerDeps } from './deps.js';

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex'); // one-shot: no Hash object per call
}

/** Body text → grant request; malformed JSON, duplicate keys, unknown fields or grants → invalid_request. */
export function parseGrantRequest(bodyText: string): GrantRequest {
  const { value: data, problem } = parseStrictJson(bodyText);
  if (problem) throw new BrokerError('invalid_request', problem.kind === 'syntax' ? 'the body is not valid JSON' : `the body has a ${problem.kind} key ${quote(problem.key)}`);
  const parsed = grantRequestSchema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new BrokerError('invalid_request', first ? `${echo(first.path.join('.')) || 'body'}: ${echo(first.message)}` : 'invalid body');
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

/**
 * The GitLab facts the candidate rules need, fetched in parallel under one deadline: one RequestDeadline for the whole
 * request, fired by its timer or by the first failure, so sibling calls stop instead of running on after the answer
 * is known.
 */
export async function gatherFacts(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, needs: FactNeeds): Promise<Facts> {
  const needsApprovals = needs.deploymentApprovals || needs.mergeRequestApprovals;
  if (!needs.jobStatus && !needsApprovals) return { approvals: {} };
  const deadline = new RequestDeadline(deps.factTimeoutMs);
  try {
    const [jobStatus, approvals] = await Promise.all([
      needs.jobStatus ? deps.facts.jobStatus(issuer, principal, deadline) : undefined,
      needsApprovals ? deps.facts.approvals(issuer, principal, needs, deadline) : {},
    ]);
    return jobStatus === undefined ? { approvals } : { jobStatus, approvals };
  } catch (err) {
    deadline.abort();
    throw err;
  } finally {
    deadline.end();
  }
}

/**
 * Facts an explain fetched recently, by token and needs: explain spends no jti, so the same token may ask again and
 * again, and each answer within the TTL reuses the last lookup instead of spending GitLab calls. Exchanges never read
 * it: what they mint rests on facts fetched for them.
 */
export interface RecentFacts {
  get(key: string, nowMs: number): Facts | undefined;
  set(key: string, facts: Facts, nowMs: number): void;
}

const MAX_RECENT_FACTS = 10_000;
/** Long enough to absorb a retry loop, short enough that a new approval shows up in the next explain soon. */
export const EXPLAIN_FACTS_TTL_MS = 15_000;

/** @example const recent = createRecentFacts(10_000); recent.set(key, facts, Date.now()) */
export function createRecentFacts(ttlMs: number): RecentFacts {
  const entries = new Map<string, { facts: Facts; expiresAt: number }>();
  return {
    get(key, nowMs) {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (entry.expiresAt > nowMs) return entry.facts;
      entries.delete(key);
      return undefined;
    },
    set(key, facts, nowMs) {
      if (ttlMs <= 0) return;
      if (entries.size >= MAX_RECENT_FACTS) {
        for (const [stale, entry] of entries) if (entry.expiresAt <= nowMs) entries.delete(stale);
        if (entries.size >= MAX_RECENT_FACTS) entries.clear();
      }
      entries.set(key, { facts, expiresAt: nowMs + ttlMs });
    },
  };
}

/** The key of an explain's facts: the token (by hash) and exactly what was looked up. */
function recentFactsKey(tokenSha256: string, needs: FactNeeds): string {
  return `${tokenSha256} ${needs.jobStatus ? 1 : 0}${needs.deploymentApprovals ? 1 : 0}${needs.mergeRequestApprovals ? 1 : 0} ${[...needs.groups].sort().join('\n')}`;
}

export interface CallerOptions extends EvaluationOptions {
  /** The token's SHA-256 when this is an explain, whose facts may come from, and go to, `deps.recentExplainFacts`. */
  readonly explainOf?: string;
}

/** Policy evaluation for an already verified caller. */
export async function evaluateCaller(deps: BrokerDeps, issuer: TrustedIssuer, principal: GitLabPrincipal, request: GrantRequest, now: Date, options: CallerOptions = {}): Promise<Authorization> {
  const { explainOf } = options;
  const preliminary = preEvaluate(currentPolicy(deps), principal, request);
  const needs = factNeeds(preliminary, options);
  let facts: Facts;
  if (explainOf === undefined) {
    facts = await gatherFacts(deps, issuer, principal, needs);
  } else {
    const key = recentFactsKey(explainOf, needs);
    const recent = deps.recentExplainFacts.get(key, now.getTime());
    facts = recent ?? (await gatherFacts(deps, issuer, principal, needs));
    if (recent === undefined) deps.recentExplainFacts.set(key, facts, now.getTime());
  }
  const decision = decide(preliminary, facts, now, options);
  return { issuer, principal, subject: subjectOf(principal), decision, visible: preliminary.visible };
}
