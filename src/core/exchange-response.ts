/**
 * The JSON the broker answers on POST /v1/exchange (and /v1/refresh) and /v1/explain, and its problem+json refusals, as schemas: the
 * contract between the server and the `exchange`/`gate` commands. The CLI reads every answer through them (a broker
 * answer of the wrong shape is an error naming the JSON path, never `undefined` written to a credential file), and a
 * test holds the server's real answers to them, so neither side can drift alone. Unknown fields are stripped, not
 * refused: a newer broker may add fields. The one exception is an unknown grant kind (see grantedSchema).
 */
import { z } from 'zod';
import { GRANT_KINDS, GRANTS, type GrantKind, type GrantRegistry } from './grants.js';
import { isoTimeSchema } from './grants/module.js';
import { jsonPath } from './json-path.js';

/** The pipeline the credentials were issued to (PipelineSubject). */
export const subjectSchema = z.object({
  project_path: z.string(),
  project_id: z.string(),
  pipeline_id: z.string(),
  job_id: z.string(),
  ref_path: z.string(),
  sha: z.string(),
  environment: z.string().optional(),
  user_login: z.string(),
});

/**
 * `grants`: each kind's credential as its module says the broker sends it (GrantModule.cli.responseSchema). A key that
 * is no registered kind is refused, not stripped: the CLI only ever asks for kinds it knows, so such a key means the
 * broker and the CLI disagree, and a credential dropped without a word would leave the job without it.
 */
export const grantedSchema = z.strictObject(
  Object.fromEntries(GRANT_KINDS.map((kind) => [kind, GRANTS[kind].cli.responseSchema.optional()])) as { [K in GrantKind]: z.ZodOptional<GrantRegistry[K]['cli']['responseSchema']> },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? `not a grant kind this CLI reads: ${issue.keys.join(', ')} (it reads ${GRANT_KINDS.join(', ')})` : undefined) },
);

/** 200 from /v1/exchange. */
export const exchangeResponseSchema = z.object({
  requestId: z.string().min(1),
  rule: z.string().min(1),
  subject: subjectSchema,
  approvals: z.object({
    deployment: z.array(z.object({ user: z.string(), at: z.string().optional() })).optional(),
    mergeRequest: z.object({ iid: z.number().int(), approvedBy: z.array(z.string()) }).optional(),
  }),
  grants: grantedSchema,
  /** For POST /v1/refresh; absent from a refresh's own answer. */
  session: z.object({ token: z.string().min(1), expiresAt: isoTimeSchema }).optional(),
});
export type ExchangeResponse = z.output<typeof exchangeResponseSchema>;

const check = z.object({ name: z.string(), ok: z.boolean(), detail: z.string() });

/** 200 from /v1/explain: every rule visible to the caller, with each condition, requirement and grant check. */
export const explainResponseSchema = z.object({
  allowed: z.boolean(),
  rule: z.string().nullable(),
  code: z.string().nullable(),
  evaluations: z.array(
    z.object({
      rule: z.string(),
      applies: z.boolean(),
      conditions: z.array(z.object({ name: z.string(), expected: z.string(), actual: z.string().nullable(), ok: z.boolean() })),
      requirements: z.array(check),
      grants: z.array(check),
    }),
  ),
});
export type ExplainResponse = z.output<typeof explainResponseSchema>;

/** RFC 9457 problem+json with the broker's stable code. */
export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string(),
  detail: z.string(),
  requestId: z.string(),
  reasons: z.array(z.object({ rule: z.string(), name: z.string(), detail: z.string() })).optional(),
});
export type Problem = z.output<typeof problemSchema>;

/** Where the first problem is, as a JSON path (`grants.token.expiresAt`), and what was expected there. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid';
  return `${jsonPath(issue.path) || '(top level)'}: ${issue.message}`;
}
