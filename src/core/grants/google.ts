/**
 * The `google` grant: a short-lived OAuth access token for a service account, minted by impersonation through the IAM
 * Credentials API (the adapter lives in src/adapters/google/).
 */
import { z } from 'zod';
import { isoTimeSchema, lifetimeSchema, type GrantModule } from './module.js';

const serviceAccountEmail = z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$|^[^@\s]+@[a-z0-9.-]+\.gserviceaccount\.com$/, 'must be a Google service account email');

export const googlePolicySchema = z.strictObject({
  serviceAccount: serviceAccountEmail,
  scopes: z.array(z.url({ protocol: /^https$/ })).min(1).max(20),
  lifetime: lifetimeSchema(3600, '15m'),
  delegates: z.array(serviceAccountEmail).max(5).optional(),
  spannerDatabaseRole: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/).optional(),
});

export const googleRequestSchema = z.strictObject({ scopes: z.array(z.string().min(1).max(256)).min(1).max(20).optional() });

export type GoogleGrantSpec = z.output<typeof googlePolicySchema>;
export type GoogleGrantRequest = z.output<typeof googleRequestSchema>;

export interface GoogleMint {
  readonly kind: 'google';
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  readonly delegates: readonly string[];
  readonly lifetimeSeconds: number;
  readonly expiresAt: Date;
  /** Spanner fine-grained access control: the database role the job's sessions should name. */
  readonly spannerDatabaseRole?: string;
}

export interface GoogleAccessToken {
  readonly accessToken: string;
  readonly expiresAt: Date;
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  readonly spannerDatabaseRole?: string;
}

const googleResponseSchema = z.object({
  accessToken: z.string().min(1),
  expiresAt: isoTimeSchema,
  serviceAccount: z.string(),
  scopes: z.array(z.string()),
  spannerDatabaseRole: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/).optional(),
});

export const googleGrant: GrantModule<'google', GoogleGrantSpec, GoogleGrantRequest, GoogleMint, GoogleAccessToken> = {
  kind: 'google',
  title: 'Google access token',
  description: 'An OAuth 2.0 access token for the rule\'s service account (impersonated through IAM Credentials, optionally through delegates), with the requested subset of the rule\'s scopes, and the rule\'s Spanner database role when it names one. Needs the `google` config section.',
  configSection: 'google',
  mintsUpstream: true,
  hardCapSeconds: 3600,
  policySchema: googlePolicySchema,
  requestSchema: googleRequestSchema,
  check(allowed, request) {
    if (!allowed) return { ok: false, detail: 'the rule grants no Google access' };
    const extra = (request.scopes ?? []).filter((scope) => !allowed.scopes.includes(scope));
    return extra.length > 0 ? { ok: false, detail: `scopes not allowed: ${extra.join(', ')}; the rule allows ${allowed.scopes.join(', ')}` } : { ok: true, detail: `impersonate ${allowed.serviceAccount}` };
  },
  plan(allowed, request, expiry) {
    return {
      kind: 'google',
      serviceAccount: allowed.serviceAccount,
      scopes: request.scopes ?? allowed.scopes,
      delegates: allowed.delegates ?? [],
      lifetimeSeconds: expiry.seconds,
      expiresAt: expiry.at,
      ...(allowed.spannerDatabaseRole === undefined ? {} : { spannerDatabaseRole: allowed.spannerDatabaseRole }),
    };
  },
  sessionScope: (plan) => ({ scopes: [...plan.scopes] }),
  withinSession(scope, request) {
    const granted = Array.isArray(scope.scopes) ? scope.scopes.filter((item): item is string => typeof item === 'string') : [];
    const scopes = request.scopes ?? granted;
    const extra = scopes.filter((item) => !granted.includes(item));
    return extra.length > 0 ? { refused: `the original exchange did not grant the scopes ${extra.join(', ')}` } : { request: { scopes } };
  },
  // The same account with other scopes is still the same principal (scopes only narrow what the token may do).
  overlaps: (earlier, later) => (earlier.serviceAccount === later.serviceAccount ? `google service account ${later.serviceAccount}` : undefined),
  auditSummary: (minted, sha256Hex) => ({
    kind: 'google', serviceAccount: minted.serviceAccount, scopes: minted.scopes, expiresAt: minted.expiresAt, sha256: sha256Hex(minted.accessToken),
    ...(minted.spannerDatabaseRole === undefined ? {} : { spannerDatabaseRole: minted.spannerDatabaseRole }),
  }),
  cli: {
    request: () => ({}),
    responseSchema: googleResponseSchema,
    output(granted, _material, dir) {
      const token = googleResponseSchema.parse(granted);
      const file = `${dir}/google-access-token`;
      return {
        files: [{ path: file, content: token.accessToken, mode: 0o600 }],
        env: [
          ['GOOGLE_OAUTH_ACCESS_TOKEN', token.accessToken], ['CLOUDSDK_AUTH_ACCESS_TOKEN_FILE', file], ['GOOGLE_SERVICE_ACCOUNT', token.serviceAccount],
          ['GOOGLE_ACCESS_TOKEN_EXPIRES_AT', token.expiresAt], ...(token.spannerDatabaseRole === undefined ? [] : [['SPANNER_DATABASE_ROLE', token.spannerDatabaseRole] as const]),
        ],
      };
    },
  },
};
