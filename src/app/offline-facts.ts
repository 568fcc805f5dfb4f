/**
 * Facts written by hand for `policy test` case files and `policy explain --approvals`: untrusted JSON/YAML, so every
 * shape is checked, and a wrong one is an error naming the file and the JSON path (never `undefined` in a message).
 * Unknown keys are refused: a misspelt fact would otherwise be silently absent.
 */
import { z } from 'zod';
import type { ApprovalFacts } from '../core/approvals.js';
import { BrokerError } from '../core/errors.js';
import { jsonPath, missingFieldText } from '../core/json-path.js';

/** GitLab ids are numbers in the API and strings in tokens; case files may write either, the broker keeps strings. */
const id = z.union([z.string().regex(/^\d+$/, 'must be a numeric id'), z.number().int().nonnegative()]).transform(String);
const time = z.string().refine((text) => !Number.isNaN(Date.parse(text)), 'must be an ISO 8601 time');

const userSchema = z.strictObject({
  id,
  username: z.string().min(1),
  name: z.string().optional(),
  emails: z.array(z.string()).optional(),
  bot: z.boolean().default(false),
  blocked: z.boolean().default(false),
});

const deploymentSchema = z.strictObject({
  deploymentId: z.number().int(),
  jobId: id,
  environment: z.string().min(1),
  pendingApprovalCount: z.number().int().min(0).default(0),
  approvals: z.array(z.strictObject({ user: userSchema, status: z.enum(['approved', 'rejected']), at: time })).default([]),
});

const mergeRequestSchema = z.strictObject({
  iid: z.number().int(),
  state: z.string().min(1),
  targetBranch: z.string().min(1),
  mergeCommitSha: z.string().nullable().default(null),
  squashCommitSha: z.string().nullable().default(null),
  sha: z.string().nullable().default(null),
  author: userSchema,
  committers: z.array(z.strictObject({ username: z.string().optional(), email: z.string().optional(), name: z.string().optional() })).default([]),
  approvals: z.array(z.strictObject({ user: userSchema, at: time.optional() }).transform((entry) => ({ user: entry.user, at: entry.at }))).default([]),
  latestVersionAt: time.optional(),
}).transform((mr) => ({ ...mr, latestVersionAt: mr.latestVersionAt }));

/** `{ deployment?, mergeRequest?, groupMembers?: { group: [user ids] } }`; null for a kind means "looked up, none". */
export const approvalFactsSchema = z
  .strictObject({
    deployment: deploymentSchema.nullable().optional(),
    mergeRequest: mergeRequestSchema.nullable().optional(),
    groupMembers: z.record(z.string(), z.array(id)).optional(),
  })
  .transform((raw): ApprovalFacts => ({
    ...(raw.deployment === undefined ? {} : { deployment: raw.deployment }),
    ...(raw.mergeRequest === undefined ? {} : { mergeRequest: raw.mergeRequest }),
    groupMembers: new Map(Object.entries(raw.groupMembers ?? {}).map(([group, ids]) => [group, new Set(ids)])),
  }));

/**
 * Parse untrusted file content, or throw invalid_request naming `file`, the JSON path of the first problem and what
 * was expected there.
 * @example parseInputFile(approvalFactsSchema, await readStructuredFile(path), path)
 */
export function parseInputFile<T>(schema: z.ZodType<T>, value: unknown, file: string, at: readonly PropertyKey[] = []): T {
  const parsed = schema.safeParse(value, { error: missingFieldText });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = jsonPath([...at, ...(issue?.path ?? [])]) || '(top level)';
  throw new BrokerError('invalid_request', `${file}: ${where}: ${issue?.message ?? 'invalid'}`);
}
