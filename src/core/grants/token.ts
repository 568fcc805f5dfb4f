/**
 * The `token` grant: an ES256 JWT from the broker's own OIDC issuer for one of the rule's audiences (the adapter lives
 * in src/adapters/jwt/, its key set in the `signing` config section).
 */
import { z } from 'zod';
import { isoTimeSchema, lifetimeSchema, type GrantModule } from './module.js';

export const tokenPolicySchema = z.strictObject({
  audiences: z.array(z.string().min(1).max(512)).min(1).max(20),
  lifetime: lifetimeSchema(3600, '10m'),
});

export const tokenRequestSchema = z.strictObject({ audience: z.string().min(1).max(512).optional() });

export type TokenGrantSpec = z.output<typeof tokenPolicySchema>;
export type TokenGrantRequest = z.output<typeof tokenRequestSchema>;

export interface TokenMint {
  readonly kind: 'token';
  readonly audience: string;
  readonly expiresAt: Date;
}

export interface MintedToken {
  readonly token: string;
  readonly expiresAt: Date;
}

const tokenResponseSchema = z.object({ token: z.string().min(1), expiresAt: isoTimeSchema });

export const TOKEN_HARD_CAP_SECONDS = 3600;

export const tokenGrant: GrantModule<'token', TokenGrantSpec, TokenGrantRequest, TokenMint, MintedToken> = {
  kind: 'token',
  title: 'broker JWT',
  description: 'An ES256 JWT signed by the broker (`iss` = `server.publicUrl`) for the requested audience, or the rule\'s first audience; verifiable with the broker\'s published JWKS.',
  configSection: 'signing',
  mintsUpstream: false,
  hardCapSeconds: TOKEN_HARD_CAP_SECONDS,
  policySchema: tokenPolicySchema,
  requestSchema: tokenRequestSchema,
  check(allowed, request) {
    if (!allowed) return { ok: false, detail: 'the rule grants no broker token' };
    const audience = request.audience;
    return audience !== undefined && !allowed.audiences.includes(audience)
      ? { ok: false, detail: `audience not allowed: ${audience}; the rule allows ${allowed.audiences.join(', ')}` }
      : { ok: true, detail: `audience ${audience ?? allowed.audiences[0]}` };
  },
  plan: (allowed, request, expiry) => ({ kind: 'token', audience: request.audience ?? (allowed.audiences[0] as string), expiresAt: expiry.at }),
  sessionScope: (plan) => ({ audience: plan.audience }),
  withinSession(scope, request) {
    const audience = request.audience ?? (typeof scope.audience === 'string' ? scope.audience : undefined);
    return audience !== undefined && audience === scope.audience ? { request: { audience } } : { refused: `the original exchange did not grant the audience ${audience ?? '(none)'}` };
  },
  overlaps(earlier, later) {
    const shared = earlier.audiences.filter((audience) => later.audiences.includes(audience));
    return shared.length > 0 ? `token audience ${shared.join(', ')}` : undefined;
  },
  auditSummary: (minted, sha256Hex) => ({ kind: 'token', expiresAt: minted.expiresAt, sha256: sha256Hex(minted.token) }),
  cli: {
    argument: 'AUDIENCE',
    request: (audience) => (audience ? { audience } : {}),
    responseSchema: tokenResponseSchema,
    output(granted, _material, dir) {
      const minted = tokenResponseSchema.parse(granted);
      const file = `${dir}/broker-token`;
      return { files: [{ path: file, content: minted.token, mode: 0o600 }], env: [['BROKER_TOKEN_FILE', file], ['BROKER_TOKEN_EXPIRES_AT', minted.expiresAt]] };
    },
  },
};
