/**
 * Signs GitLab-shaped ID tokens with a real RSA key (RS256), for dev mode and the test stand-in. Claim defaults follow
 * GitLab's documented ID token (REFERENCE.md): strings everywhere, booleans as "true"/"false".
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function generateRsaSigningKey(kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicJwk };
}

export interface ClaimDefaultsInput {
  readonly issuer: string;
  readonly audience: string;
  readonly nowSeconds?: number;
  readonly lifetimeSeconds?: number;
}

/** A complete, plausible claim set for a protected main-branch production deploy job of payments/api. */
export function defaultIdTokenClaims(input: ClaimDefaultsInput): Record<string, unknown> {
  const iat = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const host = 'gitlab.example.com';
  return {
    iss: input.issuer,
    aud: input.audience,
    sub: 'project_path:payments/api:ref_type:branch:ref:main',
    jti: randomUUID(),
    iat,
    nbf: iat - 5,
    exp: iat + (input.lifetimeSeconds ?? 3600),
    namespace_id: '10',
    namespace_path: 'payments',
    project_id: '20',
    project_path: 'payments/api',
    job_project_id: '20',
    job_project_path: 'payments/api',
    job_namespace_id: '10',
    job_namespace_path: 'payments',
    user_id: '30',
    user_login: 'alice',
    user_email: 'alice@example.com',
    user_access_level: 'developer',
    pipeline_id: '574',
    pipeline_source: 'push',
    job_id: '302',
    ref: 'main',
    ref_type: 'branch',
    ref_path: 'refs/heads/main',
    ref_protected: 'true',
    sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
    environment: 'production',
    environment_protected: 'true',
    deployment_tier: 'production',
    environment_action: 'start',
    runner_id: 1,
    runner_environment: 'self-hosted',
    ci_config_ref_uri: `${host}/payments/api//.gitlab-ci.yml@refs/heads/main`,
    ci_config_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
    project_visibility: 'internal',
  };
}

const DEFAULT_PROJECT_PATH = 'payments/api';

/**
 * The claims that name a pipeline's ref, consistent with each other as GitLab writes them.
 * @example refClaims('tag', 'v1.2.0') // { ref: 'v1.2.0', ref_type: 'tag', ref_path: 'refs/tags/v1.2.0', sub: 'project_path:payments/api:ref_type:tag:ref:v1.2.0', … }
 */
export function refClaims(type: 'branch' | 'tag', name: string, projectPath = DEFAULT_PROJECT_PATH): Record<string, string> {
  const refPath = `refs/${type === 'branch' ? 'heads' : 'tags'}/${name}`;
  return {
    ref: name,
    ref_type: type,
    ref_path: refPath,
    sub: `project_path:${projectPath}:ref_type:${type}:ref:${name}`,
    ci_config_ref_uri: `gitlab.example.com/${projectPath}//.gitlab-ci.yml@${refPath}`,
  };
}

/** Drop claims whose override is `null`, replace the rest. */
export function withOverrides(claims: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...claims };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === null) delete out[name];
    else out[name] = value;
  }
  return out;
}

export async function signIdToken(key: SigningKey, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
}
