/**
 * `policy check` findings beyond schema errors: bindings that trust a mutable path, production rules whose pipeline
 * definition is not pinned, rules that an earlier rule always shadows, and earlier rules that let a pipeline around a
 * later rule's requirements (shadowing.ts).
 */
import { GRANT_KINDS } from '../grants.js';
import type { CompiledPolicy, CompiledRule } from './compile.js';
import { earlierRulesThatMayCover } from './rule-index.js';
import { shadowingBypass } from './shadowing.js';

export interface PolicyFinding {
  /** `accepted`: an error the operator has accepted knowingly (`--allow-shadowing`); shown, never counted. */
  readonly severity: 'error' | 'warning' | 'accepted';
  readonly rule: string;
  readonly message: string;
}

export interface LintOptions {
  /** Report approval bypass by shadowing as accepted instead of as an error. */
  readonly allowShadowing?: boolean;
}

const PRODUCTION = 'production';

function conditionFor(rule: CompiledRule, claim: string) {
  return rule.conditions.find((condition) => condition.claim === claim);
}

function mayMatchProduction(rule: CompiledRule): boolean {
  const environment = conditionFor(rule, 'environment');
  const tier = conditionFor(rule, 'deployment_tier');
  return Boolean(environment?.matches(PRODUCTION) || tier?.matches(PRODUCTION));
}

function sameSpec(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** `earlier` wins whenever `later` would: same issuer, every condition of earlier is in later, no stricter requirements, every grant of later is in earlier. */
export function shadows(earlier: CompiledRule, later: CompiledRule): boolean {
  if (earlier.issuer !== undefined && earlier.issuer !== later.issuer) return false;
  for (const condition of earlier.conditions) {
    const counterpart = conditionFor(later, condition.claim);
    if (!counterpart || !sameSpec(counterpart.spec, condition.spec)) return false;
  }
  const a = earlier.require;
  const b = later.require;
  if ((a.jobRunning && !b.jobRunning) || (a.sameProject && !b.sameProject)) return false;
  if (a.deploymentApprovals && !sameSpec(a.deploymentApprovals, b.deploymentApprovals)) return false;
  if (a.mergeRequestApprovals && !sameSpec(a.mergeRequestApprovals, b.mergeRequestApprovals)) return false;
  for (const kind of GRANT_KINDS) {
    if (later.grant[kind] && !sameSpec(later.grant[kind], earlier.grant[kind])) return false;
  }
  return true;
}

export function lintPolicy(policy: CompiledPolicy, options: LintOptions = {}): PolicyFinding[] {
  const findings: PolicyFinding[] = [];
  for (const rule of policy.rules) {
    const hasProjectId = conditionFor(rule, 'project_id') !== undefined || conditionFor(rule, 'namespace_id') !== undefined;
    const hasPath = ['project_path', 'namespace_path', 'job_project_path'].some((claim) => conditionFor(rule, claim));
    if (hasPath && !hasProjectId) {
      findings.push({ severity: 'warning', rule: rule.name, message: 'binds a project by path only: a renamed or re-created project takes over the path; add project_id' });
    }
    if (!hasPath && !hasProjectId) {
      findings.push({ severity: 'warning', rule: rule.name, message: 'has no project or namespace condition: every project of the issuer can match it' });
    }
    const pinned = conditionFor(rule, 'ci_config_ref_uri');
    if (mayMatchProduction(rule) && (!pinned || typeof pinned.spec !== 'string')) {
      findings.push({ severity: 'warning', rule: rule.name, message: 'may match a production environment but does not pin ci_config_ref_uri to one exact pipeline definition' });
    }
    if (!rule.require.sameProject) {
      findings.push({ severity: 'warning', rule: rule.name, message: 'sameProject is off: fork merge-request pipelines can present this project' });
    }
    // Only earlier rules that can cover this one can shadow it (rule-index.ts): linear in the policy's size when its
    // rules are bound to exact projects, where comparing every pair was quadratic.
    const earlierRules = earlierRulesThatMayCover(policy.index, rule);
    let bypassed = false;
    for (const earlier of earlierRules) {
      const bypass = shadowingBypass(earlier, rule);
      if (bypass !== undefined) {
        findings.push({ severity: options.allowShadowing === true ? 'accepted' : 'error', rule: rule.name, message: bypass });
        bypassed = true;
        break;
      }
    }
    // A bypass already says that an earlier rule wins where this one would; accepting it accepts that.
    for (const earlier of bypassed ? [] : earlierRules) {
      if (shadows(earlier, rule)) {
        findings.push({ severity: 'error', rule: rule.name, message: `unreachable: rule ${earlier.name} comes first and always matches when this one would` });
        break;
      }
    }
  }
  return findings;
}
