/**
 * Offline policy decisions for `policy test` and `policy explain`: the same compile and evaluate code as the server,
 * with claims and facts read from files instead of a token and the GitLab API.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ApprovalFacts } from '../core/approvals.js';
import { parsePrincipal } from '../core/claims.js';
import { ERROR_STATUS, isBrokerError, type ErrorCode } from '../core/errors.js';
import { grantRequestSchema, type GrantRequest } from '../core/grants.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import { decide, preEvaluate, type Decision } from '../core/policy/evaluate.js';

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

/** Case files: YAML/JSON, each `{ cases: [{ name, claims, jobStatus?, approvals?, grants?, expect: { rule | code } }] }`. */
export async function readPolicyCases(dir: string): Promise<PolicyCase[]> {
  const names = (await readdir(dir)).filter((name) => /\.(ya?ml|json)$/.test(name)).sort();
  const cases: PolicyCase[] = [];
  for (const name of names) {
    const data = (await readStructuredFile(join(dir, name))) as { cases?: unknown };
    if (!Array.isArray(data?.cases)) throw new TypeError(`${name}: expected a top-level "cases" list`);
    for (const entry of data.cases as Array<Record<string, unknown>>) {
      const expect = (entry.expect ?? {}) as { rule?: string; code?: ErrorCode };
      if (typeof entry.name !== 'string' || (expect.rule === undefined) === (expect.code === undefined)) {
        throw new TypeError(`${name}: every case needs a name and exactly one of expect.rule or expect.code`);
      }
      if (expect.code !== undefined && !Object.hasOwn(ERROR_STATUS, expect.code)) {
        throw new TypeError(`${name}: case ${entry.name}: expect.code ${JSON.stringify(expect.code)} is not an error code (${Object.keys(ERROR_STATUS).join(', ')})`);
      }
      cases.push({
        name: entry.name,
        source: name,
        input: {
          claims: (entry.claims ?? {}) as Record<string, unknown>,
          jobStatus: entry.jobStatus as string | undefined,
          approvals: approvalFactsFrom(entry.approvals),
          grants: entry.grants,
        },
        expect,
      });
    }
  }
  return cases;
}

/** Approval facts as written in case files (plain objects; groupMembers as { group: [user ids] }). */
export function approvalFactsFrom(value: unknown): ApprovalFacts | undefined {
  if (value === undefined || value === null) return undefined;
  const raw = value as { deployment?: unknown; mergeRequest?: unknown; groupMembers?: Record<string, string[]> };
  const groupMembers = new Map<string, ReadonlySet<string>>(Object.entries(raw.groupMembers ?? {}).map(([group, ids]) => [group, new Set(ids.map(String))]));
  return { deployment: raw.deployment as ApprovalFacts['deployment'], mergeRequest: raw.mergeRequest as ApprovalFacts['mergeRequest'], groupMembers };
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
