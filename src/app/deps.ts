/** What the use cases need from the outside world; built once by the composition root (src/main.ts). */
import type { CompiledPolicy } from '../core/policy/compile.js';
import type { RecentFacts } from './authorize.js';
import type {
  AuditSink,
  CertificateAuthority,
  Clock,
  FactSource,
  GrantMinters,
  IdTokenVerifier,
  JwtSigner,
  RateLimiter,
  ReplayStore,
  TrustedIssuer,
} from '../ports.js';

export interface OperationalLog {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
}

export interface BrokerDeps {
  readonly clock: Clock;
  readonly verifier: IdTokenVerifier;
  /** The configured issuers: a refresh finds its session's issuer here (it has no ID token to verify). */
  readonly issuers: readonly TrustedIssuer[];
  readonly facts: FactSource;
  readonly replay: ReplayStore;
  readonly rateLimiter: RateLimiter;
  readonly audit: AuditSink;
  readonly signer: JwtSigner;
  /** The Linkerd CA, for the trust bundle and readiness (its minter is in `minters`). */
  readonly ca: CertificateAuthority | undefined;
  /** One minter per grant kind the config can mint. */
  readonly minters: GrantMinters;
  /** The last good policy, or undefined before the first successful load. */
  readonly policy: () => CompiledPolicy | undefined;
  /** Deadline for all GitLab API facts of one request, and another for its upstream mints (Google). */
  readonly factTimeoutMs: number;
  /** GitLab facts of recent explains, so repeating one costs no new lookup. */
  readonly recentExplainFacts: RecentFacts;
  readonly clockToleranceSeconds: number;
  readonly log: OperationalLog;
}
