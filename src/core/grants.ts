/**
 * The grant registry: every grant kind the broker can mint, one module each (./grants/<kind>.ts). Exchange, explain,
 * the policy linter, the CLI's credential writer and the generated docs loop over `GRANTS`; adding a kind is its
 * module, its adapter and one line in `REGISTERED` (docs/architecture.md walks through it).
 *
 * Every credential expires no later than the rule's lifetime, the ID token's exp and the hard cap of its kind.
 */
import { z } from 'zod';
import { googleGrant, type GoogleAccessToken, type GoogleMint } from './grants/google.js';
import { linkerdGrant, type IssuedCertificate, type LinkerdMint } from './grants/linkerd.js';
import type { GrantModule, SessionScope } from './grants/module.js';
import { tokenGrant, type MintedToken, type TokenMint } from './grants/token.js';

export type { GoogleAccessToken, GoogleMint, IssuedCertificate, LinkerdMint, MintedToken, TokenMint };
export type { CredentialFile, CredentialOutput, GrantModule, JobMaterial, KindCheck, SessionScope } from './grants/module.js';

/** The one line per kind. Order is the order of checks, plans, audit summaries and docs. */
const REGISTERED = { google: googleGrant, linkerd: linkerdGrant, token: tokenGrant };

export type GrantKind = keyof typeof REGISTERED;

type Parts<K extends GrantKind> = (typeof REGISTERED)[K] extends GrantModule<K, infer Spec, infer Request, infer Plan, infer Minted> ? { spec: Spec; request: Request; plan: Plan; minted: Minted } : never;
export type GrantSpecOf<K extends GrantKind> = Parts<K>['spec'];
export type GrantRequestOf<K extends GrantKind> = Parts<K>['request'];
export type MintPlanOf<K extends GrantKind> = Parts<K>['plan'];
export type MintedOf<K extends GrantKind> = Parts<K>['minted'];

/** Each module is filed under its own `kind` (the compiler checks it here). */
export type GrantRegistry = { readonly [K in GrantKind]: GrantModule<K, GrantSpecOf<K>, GrantRequestOf<K>, MintPlanOf<K>, MintedOf<K>> };
export const GRANTS: GrantRegistry = REGISTERED satisfies GrantRegistry;

export const GRANT_KINDS = Object.freeze(Object.keys(REGISTERED) as GrantKind[]);

export function isGrantKind(value: string): value is GrantKind {
  return Object.hasOwn(REGISTERED, value);
}

/** Hard caps in seconds, whatever a rule says. */
export const HARD_CAP_SECONDS: Readonly<Record<GrantKind, number>> = Object.freeze(
  Object.fromEntries(GRANT_KINDS.map((kind) => [kind, GRANTS[kind].hardCapSeconds])) as Record<GrantKind, number>,
);

/** A rule's `grant:` section: one optional section per kind, at least one present. */
export const grantsSchema = z
  .strictObject(Object.fromEntries(GRANT_KINDS.map((kind) => [kind, GRANTS[kind].policySchema.optional()])) as { [K in GrantKind]: z.ZodOptional<GrantRegistry[K]['policySchema']> })
  .refine((grant) => GRANT_KINDS.some((kind) => grant[kind] !== undefined), `a rule must grant at least one of ${GRANT_KINDS.join(', ')}`);

export type GrantsSpec = z.output<typeof grantsSchema>;

/** The exchange and explain body: `{ grants: { <kind>: {…} } }`, at least one kind. */
export const grantRequestSchema = z.strictObject({
  grants: z
    .strictObject(Object.fromEntries(GRANT_KINDS.map((kind) => [kind, GRANTS[kind].requestSchema.optional()])) as { [K in GrantKind]: z.ZodOptional<GrantRegistry[K]['requestSchema']> })
    .refine((grants) => GRANT_KINDS.some((kind) => grants[kind] !== undefined), 'ask for at least one grant'),
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

function checkOne<K extends GrantKind>(kind: K, allowed: GrantSpecOf<K> | undefined, request: GrantRequestOf<K>): GrantCheck {
  const { ok, detail } = GRANTS[kind].check(allowed, request);
  return { name: kind, ok, detail };
}

/** Whether `grant` allows every requested grant, scope and audience; one check per requested kind. */
export function checkGrants(grant: GrantsSpec, request: GrantRequest): GrantCheck[] {
  const checks: GrantCheck[] = [];
  for (const kind of GRANT_KINDS) {
    const wanted = request[kind];
    if (wanted !== undefined) checks.push(checkOne(kind, grant[kind], wanted));
  }
  return checks;
}

export type MintPlan = MintPlanOf<GrantKind>;

/**
 * When a credential of `kind` expires: min(rule lifetime, the kind's hard cap, ID token exp − now), in whole seconds from
 * `now` (its milliseconds dropped, so it never outlives the ID token); 0 when the ID token has already expired.
 * @example grantExpiry(now, 900, 'google', nowSeconds + 300) // → { seconds: 300, at: … }
 */
export function grantExpiry(now: Date, ruleSeconds: number, kind: GrantKind, tokenExp: number): { seconds: number; at: Date } {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const seconds = Math.max(0, Math.min(ruleSeconds, HARD_CAP_SECONDS[kind], tokenExp - nowSeconds));
  return { seconds, at: new Date((nowSeconds + seconds) * 1000) };
}

function planOne<K extends GrantKind>(kind: K, allowed: GrantSpecOf<K>, request: GrantRequestOf<K>, tokenExp: number, now: Date): MintPlanOf<K> {
  return GRANTS[kind].plan(allowed, request, grantExpiry(now, allowed.lifetime, kind, tokenExp));
}

/** The mint plan for an allowed decision; call only after checkGrants said ok for every kind. */
export function planMints(grant: GrantsSpec, request: GrantRequest, tokenExp: number, now: Date): MintPlan[] {
  const plans: MintPlan[] = [];
  for (const kind of GRANT_KINDS) {
    const wanted = request[kind];
    const allowed = grant[kind];
    if (wanted !== undefined && allowed !== undefined) plans.push(planOne(kind, allowed, wanted, tokenExp, now));
  }
  return plans;
}

/** A rule that grants a kind nothing is configured to mint: the broker refuses to start with it. */
export interface UnmintableGrant {
  readonly rule: string;
  readonly kind: GrantKind;
  readonly configSection: string;
}

/** Every (rule, kind) that `rules` grant but `mintable` cannot mint. */
export function unmintableGrants(rules: readonly { readonly name: string; readonly grant: GrantsSpec }[], mintable: ReadonlySet<GrantKind>): UnmintableGrant[] {
  const missing: UnmintableGrant[] = [];
  for (const rule of rules) {
    for (const kind of GRANT_KINDS) {
      if (rule.grant[kind] !== undefined && !mintable.has(kind)) missing.push({ rule: rule.name, kind, configSection: GRANTS[kind].configSection });
    }
  }
  return missing;
}

/** What a refresh session remembers of each granted kind: the most a refresh may ask for. */
export type SessionScopes = { readonly [K in GrantKind]?: SessionScope };

function scopeOne<K extends GrantKind>(kind: K, plan: MintPlanOf<K>): SessionScope {
  return GRANTS[kind].sessionScope(plan);
}

/** The session scopes of an exchange's plans. */
export function sessionScopes(plans: readonly MintPlan[]): SessionScopes {
  const scopes: { [K in GrantKind]?: SessionScope } = {};
  for (const plan of plans) scopes[plan.kind] = scopeOne(plan.kind, plan as MintPlanOf<typeof plan.kind>);
  return scopes;
}

function narrowOne<K extends GrantKind>(kind: K, scope: SessionScope, request: GrantRequestOf<K>): { request: GrantRequestOf<K> } | { refused: string } {
  return GRANTS[kind].withinSession(scope, request);
}

/**
 * A refresh's request, narrowed to what the original exchange granted (defaults from the session, never from the rule);
 * a kind it did not grant, or more of a kind than it granted, is a KindCheck that failed.
 */
export function narrowToSession(scopes: SessionScopes, request: GrantRequest): { request: GrantRequest; refused: GrantCheck[] } {
  const narrowed: { -readonly [K in GrantKind]?: GrantRequestOf<K> } = {};
  const refused: GrantCheck[] = [];
  for (const kind of GRANT_KINDS) {
    const wanted = request[kind];
    if (wanted === undefined) continue;
    const scope = scopes[kind];
    if (scope === undefined) {
      refused.push({ name: kind, ok: false, detail: `the original exchange did not grant ${kind}` });
      continue;
    }
    const outcome = narrowOne(kind, scope, wanted);
    if ('refused' in outcome) refused.push({ name: kind, ok: false, detail: outcome.refused });
    else (narrowed as Record<GrantKind, unknown>)[kind] = outcome.request;
  }
  return { request: narrowed as GrantRequest, refused };
}
