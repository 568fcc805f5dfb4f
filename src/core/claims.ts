/**
 * The verified ID token payload, parsed once into a typed principal. Every claim GitLab documents as a string must be
 * a string here; booleans arrive as "true"/"false" and stay strings (REFERENCE.md). Nothing downstream ever sees the
 * raw payload object.
 */
import { BrokerError } from './errors.js';

const REQUIRED_STRING_CLAIMS = [
  'iss', 'sub', 'jti', 'namespace_id', 'namespace_path', 'project_id', 'project_path', 'user_id', 'user_login',
  'pipeline_id', 'pipeline_source', 'job_id', 'ref', 'ref_type', 'ref_path', 'ref_protected', 'sha',
] as const;

const OPTIONAL_STRING_CLAIMS = [
  'user_email', 'user_access_level', 'job_project_id', 'job_project_path', 'job_namespace_id', 'job_namespace_path',
  'environment', 'environment_protected', 'deployment_tier', 'environment_action', 'runner_environment',
  'ci_config_ref_uri', 'ci_config_sha', 'project_visibility', 'groups_direct',
] as const;

type RequiredClaim = (typeof REQUIRED_STRING_CLAIMS)[number];
type OptionalClaim = (typeof OPTIONAL_STRING_CLAIMS)[number];

/** Claims a policy `when` may name: every string claim except the token's own bookkeeping. */
export const MATCHABLE_CLAIMS: readonly string[] = [...REQUIRED_STRING_CLAIMS, ...OPTIONAL_STRING_CLAIMS]
  .filter((name) => name !== 'jti' && name !== 'groups_direct');

/** Claims whose values are paths: a glob `*` or a regex without `allowSlash` never crosses a `/` in them. */
export const PATH_CLAIMS: ReadonlySet<string> = new Set([
  'namespace_path', 'project_path', 'job_project_path', 'job_namespace_path', 'ref', 'ref_path', 'ci_config_ref_uri',
  'environment', 'sub',
]);

export type GitLabPrincipal = Readonly<Record<RequiredClaim, string>> &
  Readonly<Partial<Record<OptionalClaim, string>>> & {
    readonly aud: string;
    readonly exp: number;
    readonly iat: number;
    readonly nbf: number | undefined;
    /** Every string claim by name, for policy matching; a Map so no claim can shadow a prototype property. */
    readonly claims: ReadonlyMap<string, string>;
  };

const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;
const DIGITS = /^[1-9][0-9]{0,19}$/;
const ID_CLAIMS = ['namespace_id', 'project_id', 'user_id', 'pipeline_id', 'job_id'] as const;
const MAX_CLAIM_LENGTH = 2048;

function invalid(detail: string): never {
  throw new BrokerError('invalid_token', detail);
}

function readNumericDate(payload: Record<string, unknown>, name: string, required: boolean): number | undefined {
  const value = Object.hasOwn(payload, name) ? payload[name] : undefined;
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return invalid(`claim ${name} must be a NumericDate`);
  }
  return value;
}

/**
 * Parse a signature-verified payload into a principal, naming the first missing or mistyped claim.
 * @example parsePrincipal(payload, 'https://broker.example.com')
 */
export function parsePrincipal(payload: unknown, audience: string): GitLabPrincipal {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) invalid('payload must be an object');
  const raw = payload as Record<string, unknown>;
  const claims = new Map<string, string>();
  // A plain object is safe here: its keys come only from the two constant claim lists, never from the token.
  const fields: Record<string, unknown> = {};
  for (const name of REQUIRED_STRING_CLAIMS) {
    const value = Object.hasOwn(raw, name) ? raw[name] : undefined;
    if (value === undefined || value === null) invalid(`missing claim ${name}`);
    if (typeof value !== 'string') invalid(`claim ${name} must be a string`);
    if (value.length === 0 || value.length > MAX_CLAIM_LENGTH) invalid(`claim ${name} has an invalid length`);
    claims.set(name, value);
    fields[name] = value;
  }
  for (const name of OPTIONAL_STRING_CLAIMS) {
    const value = Object.hasOwn(raw, name) ? raw[name] : undefined;
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') {
      if (name === 'groups_direct') continue; // an array in GitLab; never matched on
      invalid(`claim ${name} must be a string`);
    }
    if (value.length > MAX_CLAIM_LENGTH) invalid(`claim ${name} is too long`);
    claims.set(name, value);
    fields[name] = value;
  }
  for (const name of ID_CLAIMS) {
    if (!DIGITS.test((fields[name] as string | undefined) ?? '')) invalid(`claim ${name} must be a decimal id`);
  }
  if (!SHA.test(fields.sha as string)) invalid('claim sha must be a hex commit id');
  if (fields.ref_type !== 'branch' && fields.ref_type !== 'tag') invalid('claim ref_type must be branch or tag');
  if (!(fields.ref_path as string).startsWith('refs/')) invalid('claim ref_path must start with refs/');
  fields.exp = readNumericDate(raw, 'exp', true);
  fields.iat = readNumericDate(raw, 'iat', true);
  fields.nbf = readNumericDate(raw, 'nbf', false);
  fields.aud = audience;
  fields.claims = claims;
  return Object.freeze(fields) as GitLabPrincipal;
}

/** The pipeline facts that travel into audit records, responses and minted credentials. */
export interface PipelineSubject {
  readonly project_path: string;
  readonly project_id: string;
  readonly pipeline_id: string;
  readonly job_id: string;
  readonly ref_path: string;
  readonly sha: string;
  readonly environment: string | undefined;
  readonly user_login: string;
}

export function subjectOf(principal: GitLabPrincipal): PipelineSubject {
  return {
    project_path: principal.project_path,
    project_id: principal.project_id,
    pipeline_id: principal.pipeline_id,
    job_id: principal.job_id,
    ref_path: principal.ref_path,
    sha: principal.sha,
    environment: principal.environment,
    user_login: principal.user_login,
  };
}
