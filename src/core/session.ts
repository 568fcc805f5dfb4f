/**
 * Refresh sessions: what the broker signs into the `session` token of an exchange response, and reads back from it on
 * POST /v1/refresh. The token is a broker JWT of its own type and audience, so it can never pass for a `token` grant
 * (or a token grant for it): `typ` is SESSION_TYPE, `aud` is the refresh endpoint. It carries the verified caller
 * (re-checked on every refresh: job liveness, approvals), the rule that allowed the exchange, what each kind granted
 * (the most a refresh may ask for) and the exchange's requestId (audit records tie refreshes to it); it ends when the
 * ID token would have.
 */
import { z } from 'zod';
import { parsePrincipal, type GitLabPrincipal } from './claims.js';
import { BrokerError } from './errors.js';
import { GRANT_KINDS, type GrantKind, type SessionScopes } from './grants.js';

/** The session token's JOSE `typ`: a `token` grant is typ JWT. */
export const SESSION_TYPE = 'oidc-broker-session+jwt';

/** The session token's audience: the broker's own refresh endpoint, never an audience a consumer checks for. */
export function sessionAudience(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/v1/refresh`;
}

export interface Session {
  /** requestId of the exchange that opened the session. */
  readonly requestId: string;
  readonly rule: string;
  readonly grants: SessionScopes;
  /** The ID token's verified caller; `principal.exp` ends the session. */
  readonly principal: GitLabPrincipal;
}

/** The claims of a session token (iss, aud, iat, exp and jti are the signer's). */
export function sessionClaims(session: Session): Record<string, unknown> {
  const { principal } = session;
  return {
    sub: `project:${principal.project_id}:job:${principal.job_id}`,
    rid: session.requestId,
    rule: session.rule,
    grants: session.grants,
    principal,
  };
}

const scopeSchema = z.record(z.string(), z.unknown());
const payloadSchema = z.looseObject({
  rid: z.string().min(1).max(64),
  rule: z.string().min(1).max(256),
  grants: z.partialRecord(z.enum(GRANT_KINDS as [GrantKind, ...GrantKind[]]), scopeSchema),
  principal: z.record(z.string(), z.unknown()),
});

/** A verified session token's payload → the session; anything else is `invalid_token`. */
export function parseSession(payload: unknown): Session {
  const parsed = payloadSchema.safeParse(payload);
  if (!parsed.success) throw new BrokerError('invalid_token', 'the session token is malformed');
  const { rid, rule, grants, principal } = parsed.data;
  const aud = principal.aud;
  if (typeof aud !== 'string') throw new BrokerError('invalid_token', 'the session token is malformed');
  return { requestId: rid, rule, grants: grants as SessionScopes, principal: parsePrincipal(principal, aud) };
}
