/**
 * Offline policy decisions for `policy test` and `policy explain`: the same compile and evaluate code as the server,
 * with claims and facts read from files instead of a token and the GitLab API.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import type { ApprovalFacts } from '../core/approvals.js';
import { parsePrincipal } from '../core/claims.js';
import { ERROR_STATUS, isBrokerError, type ErrorCode } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import { decide, preEvaluate, type Decision } from '../core/policy/evaluate.js';
import { approvalFactsSchema, parseInputFile } from './offline-facts.js';

export interface OfflineInput {
  readonly claims: Record<string, unknown>;
  readonly jobStatus?: string;
  readonly approvals?: ApprovalFacts;
  readonly grants?: unknown;
}

export type OfflineOutcome = { readonly ok: true; readonly decision: Decision } | { readonly ok: false; readonly code: ErrorCode; readonly detail: string };

const DEFAULT_GRANTS = { token: {} };

/** Evaluate a claim set as the server would, after signature checks; claim errors come back as codes. */
export function decideOffline(policy: CompiledPolicy, input: OfflineInput, now: Date): OfflineOutcome {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const claims = { iat: nowSeconds, exp: nowSeconds + 3600, jti: 'offline', iss: 'https://gitlab.example.com', sub: 'offline', ...input.claims };
  try {
    const principal = parsePrincipal(claims, 'offline');
    const request: GrantRequest = grantRequestSchema.parse({ grants: input.grants ?? DEFAULT_GRANTS }).grants;
    const preliminary = preEvaluate(policy, principal, request);
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

const caseSchema = z.strictObject({
  name: z.string().min(1),
  claims: z.record(z.string(), z.unknown()).default({}),
  jobStatus: z.string().min(1).optional(),
  approvals: z.unknown().optional(),
  grants: z.unknown().optional(),
  expect: z
    .strictObject({ rule: z.string().min(1).optional(), code: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]).optional() })
    .refine((expect) => (expect.rule === undefined) !== (expect.code === undefined), 'needs exactly one of rule or code'),
});
const caseFileSchema = z.strictObject({ cases: z.array(z.unknown()) });

/** Case files: YAML/JSON, each `{ cases: [{ name, claims, jobStatus?, approvals?, grants?, expect: { rule | code } }] }`. */
export async function readPolicyCases(dir: string): Promise<PolicyCase[]> {
  const names = (await readdir(dir)).filter((name) => /\.(ya?ml|json)$/.test(name)).sort();
  const cases: PolicyCase[] = [];
  for (const name of names) {
    const file = parseInputFile(caseFileSchema, await readStructuredFile(join(dir, name)), name);
    file.cases.forEach((raw, index) => {
      const entry = parseInputFile(caseSchema, raw, name, ['cases', index]);
      const approvals = entry.approvals === undefined || entry.approvals === null ? undefined : parseInputFile(approvalFactsSchema, entry.approvals, name, ['cases', index, 'approvals']);
      cases.push({
        name: entry.name,
        source: name,
        input: { claims: entry.claims, jobStatus: entry.jobStatus, approvals, grants: entry.grants },
        expect: entry.expect,
      });
    });
  }
  return cases;
}

/** Approval facts from a `--approvals` file; a wrong shape is invalid_request naming the file and the JSON path. */
export function approvalFactsFrom(value: unknown, file: string): ApprovalFacts {
  return parseInputFile(approvalFactsSchema, value, file);
}

/** ID token claims from a `--claims` file: an object of claims (each checked as the server checks them). */
export function claimsFrom(value: unknown, file: string): Record<string, unknown> {
  return parseInputFile(z.record(z.string(), z.unknown()), value, file);
}

export interface CaseResult {
  readonly testCase: PolicyCase;
  readonly passed: boolean;
  readonly actual: string;
}

export function runPolicyCases(policy: CompiledPolicy, cases: readonly PolicyCase[], now: Date): CaseResult[] {
  return cases.map((testCase) => {
    const outcome = decideOffline(policy, testCase.input, now);
    const actual = !outcome.ok ? `code ${outcome.code}` : outcome.decision.allowed ? `rule ${outcome.decision.rule.name}` : `code ${outcome.decision.code}`;
    const expected = testCase.expect.rule !== undefined ? `rule ${testCase.expect.rule}` : `code ${testCase.expect.code}`;
    return { testCase, passed: actual === expected, actual };
  });
}
