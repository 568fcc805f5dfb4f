/**
 * One small interface per outside system. Adapters in src/adapters implement them; use cases in src/app depend only
 * on these; tests substitute fakes that the compiler checks.
 */
import type { ApprovalFacts } from './core/approvals.js';
import type { GitLabPrincipal, PipelineSubject } from './core/claims.js';
import type { GoogleMint, LinkerdMint, TokenMint } from './core/grants.js';
import type { FactNeeds } from './core/policy/evaluate.js';

export interface Clock {
  now(): Date;
}

/** The issuer configuration a token was verified against. */
export interface TrustedIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly apiUrl: string;
  readonly maxTokenAgeSeconds: number;
}

export interface VerifiedIdToken {
  readonly issuer: TrustedIssuer;
  readonly principal: GitLabPrincipal;
}

/** Verifies a GitLab ID token (signature, issuer, audience, times, claims). Throws BrokerError. */
export interface IdTokenVerifier {
  verify(token: string, now: Date): Promise<VerifiedIdToken>;
  /** Whether every issuer's discovery document and keys have been loaded. */
  ready(): Promise<boolean>;
}

/** Job liveness and approval facts from the GitLab API. Throws BrokerError('upstream_unavailable') on any failure. */
export interface FactSource {
  jobStatus(issuer: TrustedIssuer, principal: GitLabPrincipal, signal: AbortSignal): Promise<string>;
  approvals(issuer: TrustedIssuer, principal: GitLabPrincipal, needs: FactNeeds, signal: AbortSignal): Promise<ApprovalFacts>;
}

/** Provenance carried into every minted credential. */
export interface MintContext {
  readonly requestId: string;
  readonly rule: string;
  readonly subject: PipelineSubject;
  readonly principal: GitLabPrincipal;
  readonly now: Date;
}

export interface MintedToken {
  readonly token: string;
  readonly expiresAt: Date;
}

/** The broker's own OIDC issuer: ES256 JWTs and the published key set. */
export interface JwtSigner {
  readonly issuer: string;
  sign(plan: TokenMint, context: MintContext): Promise<MintedToken>;
  /** Public keys to publish: the active key and retired keys whose tokens may still be valid. */
  publicJwks(now: Date): { keys: readonly Record<string, unknown>[] };
}

export interface IssuedCertificate {
  readonly certificate: string;
  readonly chain: string;
  readonly trustAnchors: string;
  readonly identity: string;
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly expiresAt: Date;
}

/** Issues Linkerd mesh identities under the mesh trust anchor. Throws BrokerError (invalid_request for bad CSRs). */
export interface CertificateAuthority {
  issue(plan: LinkerdMint, context: MintContext): Promise<IssuedCertificate>;
  trustAnchorsPem(): string;
  /** Throws unless the issuer is usable now (chains to an anchor, is a CA, is valid, key matches). */
  check(now: Date): void;
  /** Why some consumers of the mesh (Linkerd's proxy, Go programs) would refuse the issuer chain; empty when none would. */
  consumerProblems(): readonly string[];
}

export interface GoogleAccessToken {
  readonly accessToken: string;
  readonly expiresAt: Date;
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
}

export interface GoogleTokenMinter {
  mint(plan: GoogleMint, context: MintContext): Promise<GoogleAccessToken>;
}

/** Single-use jti reservations. Implementations must make `reserve` atomic across replicas. */
export interface ReplayStore {
  /** true when this call reserved the key; false when it was already reserved. */
  reserve(key: string, expiresAt: Date): Promise<boolean>;
  release(key: string): Promise<void>;
  ready(): Promise<boolean>;
}

export type AuditPhase = 'intent' | 'result' | 'denied' | 'explain';

export interface AuditRecord {
  event: 'exchange' | 'explain' | 'refresh';
  phase: AuditPhase;
  requestId: string;
  outcome: 'allowed' | 'denied' | 'error' | 'pending';
  code?: string;
  readonly [field: string]: unknown;
}

/**
 * Writes audit records durably enough that a resolved promise means the record is written. The record is serialised
 * before `write` returns, so a caller may reuse the object for its next record.
 */
export interface AuditSink {
  write(record: AuditRecord): Promise<void>;
  ready(): Promise<boolean>;
}

/** Per-project request budget; `take` answers how long to wait when the budget is spent. */
export interface RateLimiter {
  take(key: string, now: Date): { readonly ok: boolean; readonly retryAfterSeconds: number };
}
