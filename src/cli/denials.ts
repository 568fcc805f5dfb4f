/**
 * A refusal as a developer reads it in a job log: one line that says what kind of refusal it is (a denial the pipeline
 * can fix, or an outage to retry) with the error code, then one table of what failed, what was expected and what the
 * pipeline had. Long values are cut to the part that differs, and cells wrap instead of being cut.
 */
import { formatTable } from './output.js';

const text = (value: unknown): string => (value === undefined || value === null ? '' : String(value));
const list = (value: unknown): Record<string, unknown>[] => (Array.isArray(value) ? (value as Record<string, unknown>[]) : []);

/** What a requirement or a grant check needed, for the EXPECTED column. */
const EXPECTED: Readonly<Record<string, string>> = {
  sameProject: 'the job runs in the token\'s project',
  jobRunning: 'job status running',
  deploymentApprovals: 'the deployment approved',
  mergeRequestApprovals: 'the merge request approved',
};

/** Values at least this long that share a prefix are shown from just before the part where they differ. */
const ELIDE_FROM = 40;

/**
 * Expected and actual with their common prefix replaced by `…`, keeping the path segment in which they differ.
 * @example differingParts('gitlab.example.com/a/api//ci.yml@refs/heads/main', 'gitlab.example.com/a/api//ci.yml@refs/heads/feature')
 * // ['…@refs/heads/main', '…@refs/heads/feature']
 */
export function differingParts(expected: string, actual: string): [string, string] {
  if (expected.length < ELIDE_FROM || actual.length < ELIDE_FROM) return [expected, actual];
  let common = 0;
  while (common < expected.length && expected[common] === actual[common]) common++;
  // Back to the start of the segment that differs, and one more boundary for context (`@refs/heads/` not `/`).
  const boundaries = [...expected.slice(0, common).matchAll(/[/@:]/g)].map((match) => match.index);
  const cut = boundaries.length >= 3 ? (boundaries[boundaries.length - 3] as number) : 0;
  return cut < 20 ? [expected, actual] : [`…${expected.slice(cut)}`, `…${actual.slice(cut)}`];
}

/** The /v1/explain answer as one table of every failed condition, requirement and grant, per applicable rule. */
export function formatExplanation(explanation: Record<string, unknown>): string {
  const rows: string[][] = [];
  for (const evaluation of list(explanation.evaluations)) {
    const rule = text(evaluation.rule);
    for (const condition of list(evaluation.conditions).filter((item) => item.ok !== true)) {
      const [expected, actual] = differingParts(text(condition.expected), condition.actual === null ? '(absent)' : text(condition.actual));
      rows.push([rule, text(condition.name), expected, actual]);
    }
    for (const check of list(evaluation.requirements).filter((item) => item.ok !== true)) {
      rows.push([rule, text(check.name), EXPECTED[text(check.name)] ?? 'met', text(check.detail)]);
    }
    for (const check of list(evaluation.grants).filter((item) => item.ok !== true)) {
      rows.push([rule, `grant ${text(check.name)}`, 'allowed by the rule', text(check.detail)]);
    }
  }
  return rows.length === 0 ? 'no rule applies to this project' : formatTable(['RULE', 'CONDITION', 'EXPECTED', 'PIPELINE HAD'], rows);
}

/** The first line of a refusal: a denial (403: fix the pipeline or get approvals) reads differently from an outage. */
export function refusalHeadline(status: number, problem: Record<string, unknown>): string {
  const code = text(problem.code) || 'error';
  const detail = text(problem.detail) || text(problem.title);
  const request = problem.requestId ? ` (request ${text(problem.requestId)})` : '';
  if (status === 403) return `denied (HTTP 403 ${code}): ${detail}${request}`;
  if (status === 429 || status >= 500) return `broker or upstream unavailable (HTTP ${status} ${code}): ${detail}${request}; nothing was decided, retry later`;
  return `refused (HTTP ${status} ${code}): ${detail}${request}`;
}

/** A problem+json refusal: the headline, then its reasons (when no explanation table replaces them). */
export function formatProblem(status: number, problem: Record<string, unknown>, explanation?: Record<string, unknown>): string {
  const head = refusalHeadline(status, problem);
  if (explanation) return `${head}\n${formatExplanation(explanation)}`;
  const reasons = list(problem.reasons).map((reason) => [text(reason.rule), text(reason.name), text(reason.detail)]);
  return reasons.length === 0 ? head : `${head}\n${formatTable(['RULE', 'CHECK', 'DETAIL'], reasons)}`;
}
