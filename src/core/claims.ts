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
  Readonly<Record<OptionalClaim, string | undefined>> & {
    readonly aud: string;
    readonly exp: number;
    readonly iat: number;
    readonly nbf: number | undefined;
  };

const STRING_CLAIMS: ReadonlySet<string> = new Set<string>([...REQUIRED_STRING_CLAIMS, ...OPTIONAL_STRING_CLAIMS]);

/**
 * A string claim by name, for policy matching: undefined when the token does not carry it, and for every name that
 * is not a string claim, so no policy can read a prototype property or a numeric date through it.
 */
export function claimValue(principal: GitLabPrincipal, name: string): string | undefined {
  if (!STRING_CLAIMS.has(name)) return undefined;
  const value = (principal as unknown as Readonly<Record<string, unknown>>)[name];
  return typeof value === 'string' ? value : undefined;
}

const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;
const DIGITS = /^[1-9][0-9]{0,19}$/;
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
 * The principal is one object literal with every claim in it (absent optional claims are undefined), so all
 * principals share one hidden class: a principal filled key by key turned into a dictionary-mode object, and every
 * later read of a claim (policy, audit, minting) was a hash lookup.
 * @example parsePrincipal(payload, 'https://broker.example.com')
 */
export function parsePrincipal(payload: unknown, audience: string): GitLabPrincipal {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) invalid('payload must be an object');
  const raw = payload as Record<string, unknown>;
  const required = (name: RequiredClaim): string => {
    const value = Object.hasOwn(raw, name) ? raw[name] : undefined;
    if (value === undefined || value === null) invalid(`missing claim ${name}`);
    if (typeof value !== 'string') invalid(`claim ${name} must be a string`);
    if (value.length === 0 || value.length > MAX_CLAIM_LENGTH) invalid(`claim ${name} has an invalid length`);
    return value;
  };
  const id = (name: RequiredClaim): string => {
    const value = required(name);
    if (!DIGITS.test(value)) invalid(`claim ${name} must be a decimal id`);
    return value;
  };
  const optional = (name: OptionalClaim): string | undefined => {
    const value = Object.hasOwn(raw, name) ? raw[name] : undefined;
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      if (name === 'groups_direct') return undefined; // an array in GitLab; never matched on
      invalid(`claim ${name} must be a string`);
    }
    if (value.length > MAX_CLAIM_LENGTH) invalid(`claim ${name} is too long`);
    return value;
  };
  // Required claims first, each checked in the order of REQUIRED_STRING_CLAIMS, so the first bad one is named.
  const principal = {
    iss: required('iss'),
    sub: required('sub'),
    jti: required('jti'),
    namespace_id: id('namespace_id'),
    namespace_path: required('namespace_path'),
    project_id: id('project_id'),
    project_path: required('project_path'),
    user_id: id('user_id'),
    user_login: required('user_login'),
    pipeline_id: id('pipeline_id'),
    pipeline_source: required('pipeline_source'),
    job_id: id('job_id'),
    ref: required('ref'),
    ref_type: required('ref_type'),
    ref_path: required('ref_path'),
    ref_protected: required('ref_protected'),
    sha: required('sha'),
    user_email: optional('user_email'),
    user_access_level: optional('user_access_level'),
    job_project_id: optional('job_project_id'),
    job_project_path: optional('job_project_path'),
    job_namespace_id: optional('job_namespace_id'),
    job_namespace_path: optional('job_namespace_path'),
    environment: optional('environment'),
    environment_protected: optional('environment_protected'),
    deployment_tier: optional('deployment_tier'),
    environment_action: optional('environment_action'),
    runner_environment: optional('runner_environment'),
    ci_config_ref_uri: optional('ci_config_ref_uri'),
    ci_config_sha: optional('ci_config_sha'),
    project_visibility: optional('project_visibility'),
    groups_direct: optional('groups_direct'),
    aud: audience,
    exp: readNumericDate(raw, 'exp', true) as number,
    iat: readNumericDate(raw, 'iat', true) as number,
    nbf: readNumericDate(raw, 'nbf', false),
  } satisfies GitLabPrincipal;
  if (!SHA.test(principal.sha)) invalid('claim sha must be a hex commit id');
  if (principal.ref_type !== 'branch' && principal.ref_type !== 'tag') invalid('claim ref_type must be branch or tag');
  if (!principal.ref_path.startsWith('refs/')) invalid('claim ref_path must start with refs/');
  return Object.freeze(principal);
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
