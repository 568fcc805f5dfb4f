/**
 * One small interface per outside system. Adapters in src/adapters implement them; use cases in src/app depend only
 * on these; tests substitute fakes that the compiler checks.
 */
import type { ApprovalFacts } from './core/approvals.js';
import type { GitLabPrincipal, PipelineSubject } from './core/claims.js';
import type { ErrorCode, Reason } from './core/errors.js';
import type {
  GoogleAccessToken,
  GrantKind,
  IssuedCertificate,
  LinkerdMint,
  MintedOf,
  MintedToken,
  MintPlanOf,
  TokenMint,
} from './core/grants.js';
import type { DecisionApprovals, FactNeeds } from './core/policy/evaluate.js';
import type { Session } from './core/session.js';

export type { GoogleAccessToken, IssuedCertificate, MintedToken };

/** The only source of the current time for use cases and adapters that need one (tests pass a fixed clock). */
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
  /** Whether every issuer's discovery document has been loaded and its keys can verify now (fresh, or cached within the outage window). */
  ready(): Promise<boolean>;
}

/**
 * The request's deadline as the GitLab adapters see it: an AbortSignal fits, and so does the cheaper RequestDeadline
 * (app/deadline.ts) that the use case creates per request. Listeners are called once, when it fires.
 */
export interface RequestSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * Job liveness and approval facts from the GitLab API, each call ending when `signal` (the request's deadline) fires.
 * Throws BrokerError: upstream_unavailable on any failure, rate_limited when the project's lookup budget is spent.
 */
export interface FactSource {
  jobStatus(issuer: TrustedIssuer, principal: GitLabPrincipal, signal: RequestSignal): Promise<string>;
  approvals(issuer: TrustedIssuer, principal: GitLabPrincipal, needs: FactNeeds, signal: RequestSignal): Promise<ApprovalFacts>;
}

/** Provenance carried into every minted credential. */
export interface MintContext {
  readonly requestId: string;
  readonly rule: string;
  readonly subject: PipelineSubject;
  readonly principal: GitLabPrincipal;
  readonly now: Date;
}

export interface SignedSession {
  readonly token: string;
  readonly expiresAt: Date;
}

/** The broker's own OIDC issuer: ES256 JWTs and the published key set. */
export interface JwtSigner {
  readonly issuer: string;
  sign(plan: TokenMint, context: MintContext): Promise<MintedToken>;
  /** A refresh session token (its own typ and audience), valid until the ID token's exp. */
  signSession(session: Session, now: Date): SignedSession;
  /** The session a token signed by signSession carries; invalid_token or token_expired otherwise. */
  verifySession(token: string, now: Date): Promise<Session>;
  /** Public keys to publish: the active key and retired keys whose tokens may still be valid. */
  publicJwks(now: Date): { keys: readonly Record<string, unknown>[] };
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

/**
 * Mints one kind of credential for a plan. Throws BrokerError (upstream_unavailable, or invalid_request for bad input).
 * A minter that calls an outside system stops, retries included, when `signal` (the request's deadline) aborts.
 */
export interface GrantMinter<K extends GrantKind> {
  mint(plan: MintPlanOf<K>, context: MintContext, signal?: AbortSignal): Promise<MintedOf<K>>;
}

/** Google access tokens by impersonation (IAM Credentials API, src/adapters/google/). */
export type GoogleTokenMinter = GrantMinter<'google'>;

/** The minter of every kind this broker can mint; a kind without one is refused at start when the policy grants it. */
export type GrantMinters = { readonly [K in GrantKind]?: GrantMinter<K> };

/** Single-use jti reservations. Implementations must make `reserve` atomic across replicas. */
export interface ReplayStore {
  /** true when this call reserved the key; false when it was already reserved. */
  reserve(key: string, expiresAt: Date): Promise<boolean>;
  release(key: string): Promise<void>;
  ready(): Promise<boolean>;
}

export type AuditEvent = 'exchange' | 'explain' | 'refresh';
export type AuditPhase = 'intent' | 'result' | 'denied' | 'explain';
/** `pending` before minting, `allowed` when credentials were (or, for explain, would be) granted, else `denied`. */
export type AuditOutcome = 'pending' | 'allowed' | 'denied';

/**
 * What every record carries. Once the token is verified, the caller's fields (issuer, project_id, project_path,
 * pipeline_id, job_id, user_login, ref_path, sha, environment, jti, …) sit beside these at the top level.
 */
interface AuditCommon {
  readonly event: AuditEvent;
  readonly requestId: string;
  /** SHA-256 of the presented ID token, never the token. */
  readonly tokenSha256?: string;
  readonly grantsRequested?: readonly string[];
  /** On a refresh: the requestId of the exchange that opened the session. */
  readonly originalRequestId?: string;
  readonly [callerField: string]: unknown;
}

/** Written before anything is minted: no record, no credentials. */
export interface IntentRecord extends AuditCommon {
  readonly phase: 'intent';
  readonly outcome: 'pending';
  readonly rule: string;
  readonly approvals: DecisionApprovals;
  readonly plans: readonly GrantKind[];
}

/** Written after every credential was minted, before any is returned. */
export interface ResultRecord extends AuditCommon {
  readonly phase: 'result';
  readonly outcome: 'allowed';
  readonly rule: string;
  readonly approvals: DecisionApprovals;
  readonly minted: readonly Readonly<Record<string, unknown>>[];
}

/** Written when a request returns nothing, whatever the reason. */
export interface DeniedRecord extends AuditCommon {
  readonly phase: 'denied';
  readonly outcome: 'denied';
  readonly code: ErrorCode;
  readonly detail: string;
  readonly rule?: string;
  readonly reasons?: readonly Reason[];
  /** A short description of an upstream or internal cause (never a token). */
  readonly cause?: string;
}

/** One per explain request: the decision it showed, or why it showed none. */
export interface ExplainRecord extends AuditCommon {
  readonly phase: 'explain';
  readonly outcome: 'allowed' | 'denied';
  readonly rule: string | null;
  readonly code?: ErrorCode;
  readonly detail?: string;
  readonly cause?: string;
}

export type AuditRecord = IntentRecord | ResultRecord | DeniedRecord | ExplainRecord;

/** Writes audit records durably enough that a resolved promise means the record is written. */
export interface AuditSink {
  write(record: AuditRecord): Promise<void>;
  ready(): Promise<boolean>;
}

export interface RateDecision {
  readonly ok: boolean;
  /** Whole seconds until one unit is available again; 0 when `ok`. */
  readonly retryAfterSeconds: number;
}

/**
 * A request budget per key (a project, a client address). Asynchronous because a limiter shared by replicas lives in
 * another process.
 */
export interface RateLimiter {
  /** Spends one unit of the key's budget, or answers how long to wait when it is spent. */
  take(key: string, now: Date): Promise<RateDecision>;
  /** Whether the key's budget has a unit left, without spending it. */
  peek(key: string, now: Date): Promise<RateDecision>;
}
