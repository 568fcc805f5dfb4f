/**
 * The policy file format (CONTRACT.md §3) as a strict schema: unknown keys are refused everywhere, claim values are
 * compared as strings (YAML `true` and `20` are read as "true" and "20"), and the JSON Schema we publish is generated
 * from this same definition so the two cannot drift.
 */
import { z } from 'zod';
import { MATCHABLE_CLAIMS } from '../claims.js';
import { grantsSchema } from '../grants.js';

export { grantsSchema, type GrantsSpec } from '../grants.js';

const claimValue = z.union([z.string().min(1), z.boolean(), z.number()]).transform((value) => String(value));

const patternOptions = { allowSlash: z.boolean().optional().describe('let the pattern span "/" in a path claim') };

export const matcherSchema = z.union([
  claimValue.describe('exact string match'),
  z.array(claimValue).min(1).max(100).describe('any of these exact strings'),
  z.strictObject({ glob: z.string().min(1).max(512), ...patternOptions }).describe('glob: * stays inside one path segment, ** crosses "/"'),
  z.strictObject({ regex: z.string().min(1).max(512), ...patternOptions }).describe('RE2-safe regex, anchored as ^(?:…)$'),
]);

export type MatcherSpec = z.output<typeof matcherSchema>;

const whenShape = Object.fromEntries(MATCHABLE_CLAIMS.map((name) => [name, matcherSchema.optional()])) as Record<
  string,
  z.ZodOptional<typeof matcherSchema>
>;

const groupPath = z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.\-/]{0,254}$/, 'must be a GitLab group path or id');

export const deploymentApprovalsSchema = z.strictObject({
  min: z.number().int().min(1).max(20),
  fromGroups: z.array(groupPath).min(1).max(20).optional(),
  excludeTriggerer: z.boolean().default(true),
});

export const mergeRequestApprovalsSchema = z.strictObject({
  min: z.number().int().min(1).max(20),
  fromGroups: z.array(groupPath).min(1).max(20).optional(),
  excludeAuthor: z.boolean().default(true),
  excludeCommitters: z.boolean().default(true),
  excludeTriggerer: z.boolean().default(true),
  fresh: z.boolean().default(true),
});

export const requireSchema = z.strictObject({
  jobRunning: z.boolean().default(true),
  sameProject: z.boolean().default(true),
  deploymentApprovals: deploymentApprovalsSchema.optional(),
  mergeRequestApprovals: mergeRequestApprovalsSchema.optional(),
});

export const ruleSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]{1,63}$/, 'must match [a-z0-9-]{1,63}'),
  description: z.string().max(1024).optional(),
  issuer: z.string().url().optional(),
  when: z.strictObject(whenShape).refine((when) => Object.keys(when).length > 0, 'a rule needs at least one condition'),
  require: requireSchema.default({ jobRunning: true, sameProject: true }),
  grant: grantsSchema,
});

export const policyFileSchema = z.strictObject({
  version: z.literal(1),
  rules: z.array(ruleSchema).max(1000),
});

export type RuleSpec = z.output<typeof ruleSchema>;
export type PolicyFileSpec = z.output<typeof policyFileSchema>;
export type RequireSpec = z.output<typeof requireSchema>;
export type DeploymentApprovalsSpec = z.output<typeof deploymentApprovalsSchema>;
export type MergeRequestApprovalsSpec = z.output<typeof mergeRequestApprovalsSchema>;

/** The JSON Schema published at schemas/policy.schema.json (checked for drift by a test). */
export function policyJsonSchema(): unknown {
  return {
    ...(z.toJSONSchema(policyFileSchema, { io: 'input', unrepresentable: 'any', reused: 'ref' }) as Record<string, unknown>),
    $id: 'https://gitlab-oidc-broker.dev/schemas/policy.schema.json',
    title: 'gitlab-oidc-broker policy',
  };
}
