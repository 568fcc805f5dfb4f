/**
 * What a caller asks for, whether a rule allows it, and what to mint for how long, as data. Every credential expires no
 * later than the rule's lifetime, the ID token's exp and the hard cap of its kind (CONTRACT.md §2).
 */
import { z } from 'zod';
import type { GrantsSpec } from './policy/schema.js';

export const GRANT_KINDS = ['google', 'linkerd', 'token'] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/** Hard caps in seconds, whatever a rule says. */
export const HARD_CAP_SECONDS: Readonly<Record<GrantKind, number>> = { google: 3600, linkerd: 24 * 3600, token: 3600 };

const MAX_CSR_LENGTH = 16 * 1024;

export const grantRequestSchema = z.strictObject({
  grants: z
    .strictObject({
      google: z.strictObject({ scopes: z.array(z.string().min(1).max(256)).min(1).max(20).optional() }).optional(),
      linkerd: z.strictObject({ csr: z.string().min(1).max(MAX_CSR_LENGTH) }).optional(),
      token: z.strictObject({ audience: z.string().min(1).max(512).optional() }).optional(),
    })
    .refine((grants) => grants.google || grants.linkerd || grants.token, 'ask for at least one grant'),
});

export type GrantRequest = z.output<typeof grantRequestSchema>['grants'];

export function requestedKinds(request: GrantRequest): GrantKind[] {
  return GRANT_KINDS.filter((kind) => request[kind] !== undefined);
}

export interface GrantCheck {
  readonly name: GrantKind;
  readonly ok: boolean;
  readonly detail: string;
}

/** Whether `grant` allows every requested grant, scope and audience; one check per requested kind. */
export function checkGrants(grant: GrantsSpec, request: GrantRequest): GrantCheck[] {
  const checks: GrantCheck[] = [];
  if (request.google) {
    const allowed = grant.google;
    const extra = allowed ? (request.google.scopes ?? []).filter((scope) => !allowed.scopes.includes(scope)) : [];
    checks.push(
      !allowed
        ? { name: 'google', ok: false, detail: 'the rule grants no Google access' }
        : extra.length > 0
          ? { name: 'google', ok: false, detail: `scopes not allowed: ${extra.join(', ')}; the rule allows ${allowed.scopes.join(', ')}` }
          : { name: 'google', ok: true, detail: `impersonate ${allowed.serviceAccount}` },
    );
  }
  if (request.linkerd) {
    const allowed = grant.linkerd;
    checks.push(
      allowed
        ? { name: 'linkerd', ok: true, detail: `identity ${allowed.serviceAccount}.${allowed.namespace}` }
        : { name: 'linkerd', ok: false, detail: 'the rule grants no Linkerd identity' },
    );
  }
  if (request.token) {
    const allowed = grant.token;
    const audience = request.token.audience;
    checks.push(
      !allowed
        ? { name: 'token', ok: false, detail: 'the rule grants no broker token' }
        : audience !== undefined && !allowed.audiences.includes(audience)
          ? { name: 'token', ok: false, detail: `audience not allowed: ${audience}; the rule allows ${allowed.audiences.join(', ')}` }
          : { name: 'token', ok: true, detail: `audience ${audience ?? allowed.audiences[0]}` },
    );
  }
  return checks;
}

export interface GoogleMint {
  readonly kind: 'google';
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  readonly delegates: readonly string[];
  readonly lifetimeSeconds: number;
  readonly expiresAt: Date;
}
export interface LinkerdMint {
  readonly kind: 'linkerd';
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly csr: string;
  readonly notAfter: Date;
}
export interface TokenMint {
  readonly kind: 'token';
  readonly audience: string;
  readonly expiresAt: Date;
}
export type MintPlan = GoogleMint | LinkerdMint | TokenMint;

function expiry(now: Date, ruleSeconds: number, kind: GrantKind, tokenExp: number): { seconds: number; at: Date } {
  const untilTokenExp = tokenExp - Math.floor(now.getTime() / 1000);
  const seconds = Math.max(0, Math.min(ruleSeconds, HARD_CAP_SECONDS[kind], untilTokenExp));
  return { seconds, at: new Date(Math.floor(now.getTime() / 1000) * 1000 + seconds * 1000) };
}

/** The mint plan for an allowed decision; call only after checkGrants said ok for every kind. */
export function planMints(grant: GrantsSpec, request: GrantRequest, tokenExp: number, now: Date): MintPlan[] {
  const plans: MintPlan[] = [];
  if (request.google && grant.google) {
    const { seconds, at } = expiry(now, grant.google.lifetime, 'google', tokenExp);
    plans.push({
      kind: 'google',
      serviceAccount: grant.google.serviceAccount,
      scopes: request.google.scopes ?? grant.google.scopes,
      delegates: grant.google.delegates ?? [],
      lifetimeSeconds: seconds,
      expiresAt: at,
    });
  }
  if (request.linkerd && grant.linkerd) {
    const { at } = expiry(now, grant.linkerd.lifetime, 'linkerd', tokenExp);
    plans.push({ kind: 'linkerd', serviceAccount: grant.linkerd.serviceAccount, namespace: grant.linkerd.namespace, csr: request.linkerd.csr, notAfter: at });
  }
  if (request.token && grant.token) {
    const { at } = expiry(now, grant.token.lifetime, 'token', tokenExp);
    plans.push({ kind: 'token', audience: request.token.audience ?? (grant.token.audiences[0] as string), expiresAt: at });
  }
  return plans;
}
