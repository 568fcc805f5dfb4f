/**
 * What `oidc-broker gate` concludes from a /v1/explain answer. A gate runs early, in a job with
 * `environment: action: verify`, for which GitLab creates no deployment: deployment approvals cannot be judged yet and
 * are reported as checked when the deploy job runs. Everything else (conditions, grants, job state, merge-request
 * approvals) is judged now.
 */

export interface GateVerdict {
  readonly pass: boolean;
  /** The rule that lets the pipeline through, when it passes. */
  readonly rule: string | null;
  /** Requirements left to the deploy job's exchange, each as `name: detail`. */
  readonly deferred: readonly string[];
}

interface Check {
  readonly name?: unknown;
  readonly ok?: unknown;
  readonly detail?: unknown;
  readonly deferred?: unknown;
}

interface Evaluation {
  readonly rule?: unknown;
  readonly applies?: unknown;
  readonly requirements?: unknown;
  readonly grants?: unknown;
}

const LATER = 'deploymentApprovals';
const checks = (value: unknown): Check[] => (Array.isArray(value) ? (value as Check[]) : []);
const describe = (check: Check): string => `${String(check.name)}: ${String(check.detail ?? '')}`;

/** @example judgeGate({ allowed: true, rule: 'r', evaluations: [] }) // { pass: true, rule: 'r', deferred: [] } */
export function judgeGate(explanation: Record<string, unknown>): GateVerdict {
  const evaluations = (Array.isArray(explanation.evaluations) ? explanation.evaluations : []) as Evaluation[];
  if (explanation.allowed === true) {
    const rule = typeof explanation.rule === 'string' ? explanation.rule : null;
    const winner = evaluations.find((evaluation) => evaluation.rule === rule);
    return { pass: true, rule, deferred: checks(winner?.requirements).filter((check) => check.deferred === true).map(describe) };
  }
  // A broker that does not know ?defer= judged deployment approvals anyway (and found no deployment for this verify
  // job): a rule whose only failures are deployment approvals passes the gate all the same.
  for (const evaluation of evaluations) {
    if (evaluation.applies !== true || !checks(evaluation.grants).every((check) => check.ok === true)) continue;
    const failed = checks(evaluation.requirements).filter((check) => check.ok !== true);
    if (failed.length > 0 && failed.every((check) => check.name === LATER)) {
      return { pass: true, rule: String(evaluation.rule), deferred: failed.map((check) => `${LATER}: checked when the deploy job runs (here: ${String(check.detail ?? '')})`) };
    }
  }
  return { pass: false, rule: null, deferred: [] };
}
