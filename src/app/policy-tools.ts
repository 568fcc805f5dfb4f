/**
 * Offline policy decisions for `policy test` and `policy explain`: the same compile and evaluate code as the server,
 * with claims and facts read from files instead of a token and the GitLab API.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import type { ApprovalFacts } from '../core/approvals.js';
import { parsePrincipal } from '../core/claims.js';
import { ERROR_STATUS, isBrokerError, type ErrorCode } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import { decide, preEvaluate, type Decision, type PreEvaluationOptions } from '../core/policy/evaluate.js';
import { approvalFactsSchema, parseInputFile } from './offline-facts.js';

export interface OfflineInput {
  readonly claims: Record<string, unknown>;
  readonly jobStatus?: string;
  readonly approvals?: ApprovalFacts;
  /** Default `{ token: {} }`. */
  readonly grants?: GrantRequest;
}

export type OfflineOutcome = { readonly ok: true; readonly decision: Decision } | { readonly ok: false; readonly code: ErrorCode; readonly detail: string };

const DEFAULT_GRANTS: GrantRequest = { token: {} };

/**
 * Evaluate a claim set as the server would, after signature checks; claim errors come back as codes. `everyRule`:
 * an evaluation for every rule, not only those that can apply (the same decision).
 */
export function decideOffline(policy: CompiledPolicy, input: OfflineInput, now: Date, options: PreEvaluationOptions = {}): OfflineOutcome {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const claims = { iat: nowSeconds, exp: nowSeconds + 3600, jti: 'offline', iss: 'https://gitlab.example.com', sub: 'offline', ...input.claims };
  try {
    const principal = parsePrincipal(claims, 'offline');
    const preliminary = preEvaluate(policy, principal, input.grants ?? DEFAULT_GRANTS, options);
    const approvals = input.approvals ?? {};
    const facts = input.jobStatus === undefined ? { jobStatus: 'running', approvals } : { jobStatus: input.jobStatus, approvals };
    return { ok: true, decision: decide(preliminary, facts, now) };
  } catch (err) {
    if (isBrokerError(err)) return { ok: false, code: err.code, detail: err.detail };
    return { ok: false, code: 'invalid_request', detail: (err as Error).message };
  }
}

export interface PolicyCase {
  readonly name: string;
  readonly source: string;
  readonly input: OfflineInput;
  /** A rule name (allowed) or an error code (denied). */
  readonly expect: { readonly rule?: string; readonly code?: ErrorCode };
}

export async function readStructuredFile(path: string): Promise<unknown> {
  return parse(await readFile(path, 'utf8'), { uniqueKeys: true });
}

const CASE_KEYS = new Set(['name', 'claims', 'jobStatus', 'approvals', 'grants', 'expect']);
const EXPECT_KEYS = new Set(['rule', 'code']);

/** A mistake in a case file (an unknown key, an unknown code or rule): the case cannot say anything until fixed. */
export class PolicyCaseError extends Error {
  override readonly name = 'PolicyCaseError';
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** " (did you mean X?)" for the nearest candidate (a typo or a prefix), else the list of known ones. */
function closest(word: string, candidates: Iterable<string>): string {
  const list = [...candidates];
  const scored = list.map((candidate) => ({ candidate, distance: candidate.startsWith(word) || word.startsWith(candidate) ? 1 : editDistance(word, candidate) }));
  const best = scored.sort((a, b) => a.distance - b.distance)[0];
  return best && best.distance <= Math.max(2, Math.floor(word.length / 4)) ? ` (did you mean ${best.candidate}?)` : ` (known: ${list.join(', ')})`;
}

/** Problems a case file has before anything runs: unknown keys, codes that do not exist, rules the policy lacks. */
export function caseFileProblems(entry: Record<string, unknown>, ruleNames: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(entry)) if (!CASE_KEYS.has(key)) problems.push(`unknown key ${key}${closest(key, CASE_KEYS)}`);
  const expect = entry.expect;
  if (typeof expect !== 'object' || expect === null) return [...problems, 'expect: needs exactly one of rule or code'];
  for (const key of Object.keys(expect)) if (!EXPECT_KEYS.has(key)) problems.push(`unknown key expect.${key}${closest(key, EXPECT_KEYS)}`);
  const { rule, code } = expect as { rule?: unknown; code?: unknown };
  if (code !== undefined && !Object.hasOwn(ERROR_STATUS, String(code))) problems.push(`expect.code ${String(code)} is not an error code${closest(String(code), Object.keys(ERROR_STATUS))}`);
  if (rule !== undefined && ruleNames.size > 0 && !ruleNames.has(String(rule))) problems.push(`expect.rule ${String(rule)} is not a rule of the policy${closest(String(rule), ruleNames)}`);
  return problems;
}

/** The case files at `path`: the file itself, or every *.yaml / *.yml / *.json in the directory. */
async function caseFiles(path: string): Promise<{ file: string; label: string }[]> {
  if (!(await stat(path)).isDirectory()) return [{ file: path, label: basename(path) }];
  return (await readdir(path)).filter((name) => /\.(ya?ml|json)$/.test(name)).sort().map((name) => ({ file: join(path, name), label: name }));
}

/**
 * Case files (a file or a directory): YAML/JSON, each `{ cases: [{ name, claims, jobStatus?, approvals?, grants?,
 * expect: { rule | code } }] }`. Unknown keys, unknown codes and rules the policy lacks throw PolicyCaseError.
 */
/** Loose on purpose: unknown keys are reported by caseFileProblems, with the nearest known key. */
const caseSchema = z.looseObject({
  name: z.string().min(1),
  claims: z.record(z.string(), z.unknown()).default({}),
  jobStatus: z.string().min(1).optional(),
  approvals: z.unknown().optional(),
  grants: z.unknown().optional(),
  expect: z
    .looseObject({ rule: z.string().min(1).optional(), code: z.string().min(1).optional() })
    .refine((expect) => (expect.rule === undefined) !== (expect.code === undefined), 'needs exactly one of rule or code'),
});
const caseFileSchema = z.strictObject({ cases: z.array(z.unknown()) });

export async function readPolicyCases(path: string, ruleNames: ReadonlySet<string> = new Set()): Promise<PolicyCase[]> {
  const cases: PolicyCase[] = [];
  const problems: string[] = [];
  for (const { file, label } of await caseFiles(path)) {
    // Shapes first (invalid_request naming the file and the JSON path), then what a shape cannot say: unknown keys,
    // codes and rule names, each with the nearest known one.
    const data = parseInputFile(caseFileSchema, await readStructuredFile(file), label);
    data.cases.forEach((raw, index) => {
      const entry = parseInputFile(caseSchema, raw, label, ['cases', index]);
      const approvals = entry.approvals === undefined || entry.approvals === null ? undefined : parseInputFile(approvalFactsSchema, entry.approvals, label, ['cases', index, 'approvals']);
      const grants = entry.grants === undefined ? undefined : parseInputFile(grantRequestSchema.shape.grants, entry.grants, label, ['cases', index, 'grants']);
      problems.push(...caseFileProblems(raw as Record<string, unknown>, ruleNames).map((problem) => `${label}: case ${JSON.stringify(entry.name)}: ${problem}`));
      cases.push({
        name: entry.name,
        source: label,
        input: { claims: entry.claims, jobStatus: entry.jobStatus, approvals, grants },
        expect: entry.expect as { rule?: string; code?: ErrorCode },
      });
    });
  }
  if (problems.length > 0) throw new PolicyCaseError(problems.join('\n'));
  return cases;
}

/** Approval facts from a `--approvals` file; a wrong shape is invalid_request naming the file and the JSON path. */
export function approvalFactsFrom(value: unknown, file: string): ApprovalFacts {
  return parseInputFile(approvalFactsSchema, value, file);
}

/** Requested grants from `--grants` (as an exchange body's `grants`); a wrong shape is invalid_request naming the path. */
export function grantsFrom(value: unknown, source: string): GrantRequest {
  return parseInputFile(grantRequestSchema.shape.grants, value, source);
}

/** ID token claims from a `--claims` file: an object of claims (each checked as the server checks them). */
export function claimsFrom(value: unknown, file: string): Record<string, unknown> {
  return parseInputFile(z.record(z.string(), z.unknown()), value, file);
}

export interface CaseResult {
  readonly testCase: PolicyCase;
  readonly passed: boolean;
  readonly actual: string;
  /** Why the decision came out as it did: the denial's detail, or the rule that allowed. */
  readonly detail: string;
}

export function runPolicyCases(policy: CompiledPolicy, cases: readonly PolicyCase[], now: Date): CaseResult[] {
  return cases.map((testCase) => {
    const outcome = decideOffline(policy, testCase.input, now);
    const actual = !outcome.ok ? `code ${outcome.code}` : outcome.decision.allowed ? `rule ${outcome.decision.rule.name}` : `code ${outcome.decision.code}`;
    const detail = !outcome.ok ? outcome.detail : outcome.decision.allowed ? `allowed by rule ${outcome.decision.rule.name}` : outcome.decision.detail;
    const expected = testCase.expect.rule !== undefined ? `rule ${testCase.expect.rule}` : `code ${testCase.expect.code}`;
    return { testCase, passed: actual === expected, actual, detail };
  });
}
