/**
 * Deterministic evaluation, in two pure phases so facts are fetched only when a candidate rule needs them:
 *   1. `preEvaluate`: conditions and grants for every rule that can apply (no facts): the rule index (rule-index.ts)
 *      leaves out rules of another issuer or another exact project, which could neither apply nor be shown;
 *   2. `decide`: requirements of the candidate rules over the fetched facts; the first rule in file order whose `when`
 *      holds, whose `require` holds and which allows every requested grant wins.
 */
import { echo } from '../echo.js';
import {
  evaluateDeploymentApprovals,
  evaluateMergeRequestApprovals,
  type ApprovalFacts,
  type Approver,
} from '../approvals.js';
import { claimValue, type GitLabPrincipal } from '../claims.js';
import type { ErrorCode, Reason } from '../errors.js';
import { checkGrants, type GrantCheck, type GrantRequest } from '../grants.js';
import type { CompiledMatcher, CompiledPolicy, CompiledRule } from './compile.js';
import { rulesFor } from './rule-index.js';

export interface ConditionResult {
  readonly name: string;
  readonly expected: string;
  readonly actual: string | null;
  readonly ok: boolean;
  /** Not evaluated (ok is false): an earlier project condition already failed, so the rule cannot apply. */
  readonly skipped?: true;
}

export type RequirementName = 'sameProject' | 'jobRunning' | 'deploymentApprovals' | 'mergeRequestApprovals';

export interface RequirementResult {
  readonly name: RequirementName;
  readonly ok: boolean;
  readonly detail: string;
  /** Not judged in this evaluation (explain asked to defer it); `ok` is then true and `detail` says when it is checked. */
  readonly deferred?: true;
}

/**
 * Requirements an explanation may leave to the exchange. A deploy gate runs in a job with `environment: action: verify`,
 * for which GitLab creates no deployment, so deployment approvals can only be judged when the deploy job runs.
 */
export interface EvaluationOptions {
  readonly deferDeploymentApprovals?: boolean;
}

export interface PreEvaluationOptions {
  /**
   * Evaluate every rule of the policy, not only those the index says can apply: the same decision, with an
   * evaluation for each rule (`policy explain` shows an operator why each of their rules did not apply).
   */
  readonly everyRule?: boolean;
}

export interface RuleEvaluation {
  readonly rule: string;
  readonly applies: boolean;
  readonly conditions: readonly ConditionResult[];
  readonly requirements: readonly RequirementResult[];
  readonly grants: readonly GrantCheck[];
}

export interface Preliminary {
  readonly principal: GitLabPrincipal;
  readonly request: GrantRequest;
  readonly evaluations: readonly RuleEvaluation[];
  /** Rules that apply and allow every requested grant: only these can need facts. */
  readonly candidates: readonly CompiledRule[];
  /** Rules the caller may see in explanations and reasons (their project conditions hold). */
  readonly visible: ReadonlySet<string>;
}

export interface FactNeeds {
  readonly jobStatus: boolean;
  readonly deploymentApprovals: boolean;
  readonly mergeRequestApprovals: boolean;
  /** Union of every candidate's `fromGroups`. */
  readonly groups: readonly string[];
}

export interface Facts {
  /** GitLab job status (running, success, …) when fetched. */
  readonly jobStatus?: string;
  readonly approvals: ApprovalFacts;
}

export interface DecisionApprovals {
  readonly deployment?: readonly Approver[];
  readonly mergeRequest?: { readonly iid: number; readonly approvedBy: readonly string[] };
}

export type Decision =
  | { readonly allowed: true; readonly rule: CompiledRule; readonly evaluations: readonly RuleEvaluation[]; readonly approvals: DecisionApprovals }
  | {
      readonly allowed: false;
      readonly rule: null;
      readonly code: ErrorCode;
      readonly detail: string;
      readonly reasons: readonly Reason[];
      readonly evaluations: readonly RuleEvaluation[];
    };

/**
 * Conditions that bind a rule to projects: a caller sees a rule's details only when all of these hold for it. The
 * issuer is one of them: a project id names a project on one GitLab instance only.
 */
const PROJECT_CLAIMS = new Set([
  'iss', 'project_id', 'project_path', 'namespace_id', 'namespace_path', 'job_project_id', 'job_project_path', 'job_namespace_id',
  'job_namespace_path', 'ci_config_ref_uri', 'sub',
]);

const isPattern = (matcher: CompiledMatcher): boolean => typeof matcher.spec === 'object' && !Array.isArray(matcher.spec);

/**
 * Cheap conditions (issuer, exact strings, lists) first; patterns only as far as they can matter. When a project-binding
 * condition fails, the rule neither applies nor is visible, so its patterns are not run at all: a caller from an
 * unrelated project never reaches another team's patterns. Rules the caller can see are evaluated in full, for their
 * explanations. Results keep the policy's order.
 */
function evaluateConditions(rule: CompiledRule, principal: GitLabPrincipal): ConditionResult[] {
  const results: ConditionResult[] = [];
  if (rule.issuer !== undefined) {
    results.push({ name: 'iss', expected: rule.issuer, actual: principal.iss, ok: rule.issuer === principal.iss });
  }
  const offset = results.length;
  const pending: number[] = [];
  let projectFailed = results.some((result) => !result.ok);
  rule.conditions.forEach((matcher, position) => {
    const actual = claimValue(principal, matcher.claim) ?? null;
    if (isPattern(matcher)) {
      results.push({ name: matcher.claim, expected: matcher.expected, actual, ok: false });
      pending.push(position);
      return;
    }
    const ok = matcher.matches(actual ?? undefined);
    if (!ok && PROJECT_CLAIMS.has(matcher.claim)) projectFailed = true;
    results.push({ name: matcher.claim, expected: matcher.expected, actual, ok });
  });
  // Project-binding patterns before the others, and none once the rule is known to be invisible.
  pending.sort((a, b) => Number(!PROJECT_CLAIMS.has((rule.conditions[a] as CompiledMatcher).claim)) - Number(!PROJECT_CLAIMS.has((rule.conditions[b] as CompiledMatcher).claim)));
  for (const position of pending) {
    const matcher = rule.conditions[position] as CompiledMatcher;
    const index = offset + position;
    const result = results[index] as ConditionResult;
    if (projectFailed) {
      results[index] = { ...result, expected: `${matcher.expected} (not evaluated: a project condition failed)`, skipped: true };
      continue;
    }
    const ok = matcher.matches(result.actual ?? undefined);
    if (!ok && PROJECT_CLAIMS.has(matcher.claim)) projectFailed = true;
    results[index] = { ...result, ok };
  }
  return results;
}

/** Phase 1: conditions and grant checks for every rule that can apply, in policy order; no facts needed. */
export function preEvaluate(policy: CompiledPolicy, principal: GitLabPrincipal, request: GrantRequest, options: PreEvaluationOptions = {}): Preliminary {
  const evaluations: RuleEvaluation[] = [];
  const candidates: CompiledRule[] = [];
  const visible = new Set<string>();
  const rules = options.everyRule === true
    ? policy.rules
    : rulesFor(policy.index, principal.iss, { id: claimValue(principal, 'project_id'), path: claimValue(principal, 'project_path') });
  for (const rule of rules) {
    const conditions = evaluateConditions(rule, principal);
    const applies = conditions.every((condition) => condition.ok);
    if (conditions.every((condition) => condition.ok || !PROJECT_CLAIMS.has(condition.name))) visible.add(rule.name);
    const grants = applies ? checkGrants(rule.grant, request) : [];
    if (applies && grants.every((check) => check.ok)) candidates.push(rule);
    evaluations.push({ rule: rule.name, applies, conditions, requirements: [], grants });
  }
  return { principal, request, evaluations, candidates, visible };
}

/** Which facts the candidate rules need; an empty need means no GitLab API call at all. */
export function factNeeds(preliminary: Preliminary, options: EvaluationOptions = {}): FactNeeds {
  const groups = new Set<string>();
  let jobStatus = false;
  let deploymentApprovals = false;
  let mergeRequestApprovals = false;
  for (const rule of preliminary.candidates) {
    if (!sameProjectHolds(rule, preliminary.principal).ok) continue;
    jobStatus ||= rule.require.jobRunning;
    const deployment = rule.require.deploymentApprovals;
    const mergeRequest = rule.require.mergeRequestApprovals;
    if (deployment && !options.deferDeploymentApprovals) {
      deploymentApprovals = true;
      deployment.fromGroups?.forEach((group) => groups.add(group));
    }
    if (mergeRequest) {
      mergeRequestApprovals = true;
      mergeRequest.fromGroups?.forEach((group) => groups.add(group));
    }
  }
  return { jobStatus, deploymentApprovals, mergeRequestApprovals, groups: [...groups] };
}

function sameProjectHolds(rule: CompiledRule, principal: GitLabPrincipal): RequirementResult {
  if (!rule.require.sameProject) return { name: 'sameProject', ok: true, detail: 'not required' };
  const jobProject = principal.job_project_id;
  if (jobProject === undefined) {
    // GitLab before 18.4 has no job_project_id; only fork MR pipelines can then run elsewhere, so refuse those.
    const ok = principal.pipeline_source !== 'merge_request_event';
    return { name: 'sameProject', ok, detail: ok ? 'job_project_id absent; not a merge request pipeline' : 'job_project_id absent in a merge request pipeline' };
  }
  const ok = jobProject === principal.project_id;
  return { name: 'sameProject', ok, detail: ok ? `job runs in project ${jobProject}` : `job runs in project ${jobProject}, token names project ${principal.project_id} (fork pipeline)` };
}

interface RequirementsOutcome {
  readonly results: RequirementResult[];
  readonly approvals: DecisionApprovals;
}

function deferredDeploymentApprovals(spec: NonNullable<CompiledRule['require']['deploymentApprovals']>): RequirementResult {
  const from = spec.fromGroups?.length ? ` from ${spec.fromGroups.join(', ')}` : '';
  return { name: 'deploymentApprovals', ok: true, deferred: true, detail: `checked when the deploy job runs (needs ${spec.min}${from})` };
}

function evaluateRequirements(rule: CompiledRule, principal: GitLabPrincipal, facts: Facts, now: Date, options: EvaluationOptions): RequirementsOutcome {
  const results: RequirementResult[] = [sameProjectHolds(rule, principal)];
  const approvals: { deployment?: readonly Approver[]; mergeRequest?: { iid: number; approvedBy: string[] } } = {};
  if (rule.require.jobRunning) {
    const status = facts.jobStatus;
    results.push({ name: 'jobRunning', ok: status === 'running', detail: status === undefined ? 'job status unknown' : `job status is ${status}` });
  }
  const deploymentSpec = rule.require.deploymentApprovals;
  if (deploymentSpec && options.deferDeploymentApprovals) {
    results.push(deferredDeploymentApprovals(deploymentSpec));
  } else if (deploymentSpec) {
    const outcome = evaluateDeploymentApprovals(deploymentSpec, principal, facts.approvals, now);
    results.push({ name: 'deploymentApprovals', ok: outcome.ok, detail: outcome.detail });
    approvals.deployment = outcome.approvers;
  }
  const mergeRequestSpec = rule.require.mergeRequestApprovals;
  if (mergeRequestSpec) {
    const outcome = evaluateMergeRequestApprovals(mergeRequestSpec, principal, facts.approvals, now);
    results.push({ name: 'mergeRequestApprovals', ok: outcome.ok, detail: outcome.detail });
    const iid = facts.approvals.mergeRequest?.iid;
    if (iid !== undefined) approvals.mergeRequest = { iid, approvedBy: outcome.approvers.map((approver) => approver.user) };
  }
  return { results, approvals };
}

const REQUIREMENT_CODE: Readonly<Record<RequirementName, ErrorCode>> = {
  sameProject: 'policy_denied',
  jobRunning: 'job_not_running',
  deploymentApprovals: 'approval_required',
  mergeRequestApprovals: 'approval_required',
};

/** Phase 2: requirements of the candidates over the facts, and the decision. */
export function decide(preliminary: Preliminary, facts: Facts, now: Date, options: EvaluationOptions = {}): Decision {
  const { principal } = preliminary;
  const byName = new Map<string, RuleEvaluation>(preliminary.evaluations.map((evaluation) => [evaluation.rule, evaluation]));
  let firstFailure: { rule: string; requirement: RequirementResult } | undefined;
  for (const rule of preliminary.candidates) {
    const outcome = evaluateRequirements(rule, principal, facts, now, options);
    const previous = byName.get(rule.name) as RuleEvaluation;
    byName.set(rule.name, { ...previous, requirements: outcome.results });
    const failed = outcome.results.find((result) => !result.ok);
    if (!failed) {
      return { allowed: true, rule, evaluations: [...byName.values()], approvals: outcome.approvals };
    }
    firstFailure ??= { rule: rule.name, requirement: failed };
  }
  const evaluations = [...byName.values()];
  const reasons = reasonsFor(evaluations, preliminary.visible);
  if (firstFailure) {
    return { allowed: false, rule: null, code: REQUIREMENT_CODE[firstFailure.requirement.name], detail: `rule ${firstFailure.rule}: ${firstFailure.requirement.detail}`, reasons, evaluations };
  }
  const applicable = evaluations.find((evaluation) => evaluation.applies);
  if (applicable) {
    const failed = applicable.grants.find((check) => !check.ok);
    return { allowed: false, rule: null, code: 'grant_not_allowed', detail: `rule ${applicable.rule}: ${failed?.detail ?? 'grant not allowed'}`, reasons, evaluations };
  }
  return { allowed: false, rule: null, code: 'policy_denied', detail: 'no rule matches this pipeline', reasons, evaluations };
}

/** Per visible rule, what failed: conditions for rules that do not apply, then grants, then requirements. */
export function reasonsFor(evaluations: readonly RuleEvaluation[], visible: ReadonlySet<string>): Reason[] {
  const reasons: Reason[] = [];
  for (const evaluation of evaluations) {
    if (!visible.has(evaluation.rule)) continue;
    for (const condition of evaluation.conditions) {
      if (!condition.ok && condition.skipped !== true) reasons.push({ rule: evaluation.rule, name: condition.name, detail: `expected ${condition.expected}, got ${condition.actual === null ? '(absent)' : echo(condition.actual)}` });
    }
    for (const check of evaluation.grants) if (!check.ok) reasons.push({ rule: evaluation.rule, name: `grant.${check.name}`, detail: check.detail });
    for (const requirement of evaluation.requirements) if (!requirement.ok) reasons.push({ rule: evaluation.rule, name: requirement.name, detail: requirement.detail });
  }
  return reasons;
}
