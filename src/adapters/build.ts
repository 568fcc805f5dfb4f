/**
 * Every adapter the broker runs on, built from the config in one place: `serve`, `dev` and `doctor` all call
 * `buildAdapters`, so doctor checks exactly what serve would run (same verifier options, same refusals).
 */
import type { JWK } from 'jose';
import { createAuditSink, type FileAuditSink } from './audit/winston-audit.js';
import { createCertificateAuthority } from './ca/index.js';
import { systemClock } from './clock.js';
import { createTokenReader } from './gitlab/api-client.js';
import { createGitLabClient, type GitLabClient } from './gitlab/client.js';
import { createIdTokenVerifier, type IssuerKeysEvent } from './gitlab/verifier.js';
import { createGoogleMinter } from './google/from-config.js';
import { createJwtSigner, readSigningJwks, type BrokerJwtSigner } from './jwt/signer.js';
import { createMemoryRateLimiter } from './store/memory-rate-limit.js';
import { createMemoryReplayStore } from './store/memory-replay.js';
import { createRedisConnection, type RedisConnection } from './store/redis-connection.js';
import { createRedisRateLimiter } from './store/redis-rate-limit.js';
import { createRedisReplayStore } from './store/redis-replay.js';
import type { OperationalLog } from '../app/deps.js';
import { ConfigError } from '../config/load.js';
import type { BrokerConfig } from '../config/schema.js';
import type { GrantKind } from '../core/grants.js';
import type {
  AuditSink,
  CertificateAuthority,
  Clock,
  FactSource,
  GoogleTokenMinter,
  GrantMinter,
  GrantMinters,
  IdTokenVerifier,
  RateLimiter,
  ReplayStore,
  TrustedIssuer,
} from '../ports.js';

/** How far an ID token's times may be off our clock. */
export const CLOCK_TOLERANCE_SECONDS = 30;

/** Stand-ins for adapters (tests, dev mode); everything not given is built from the config. */
export interface AdapterOverrides {
  readonly clock?: Clock;
  readonly audit?: AuditSink;
  readonly replay?: ReplayStore;
  readonly facts?: FactSource;
  readonly ca?: CertificateAuthority;
  readonly google?: GoogleTokenMinter;
  readonly signingKeys?: readonly JWK[];
  /** JWKS cooldown for unknown kids (tests shorten it). */
  readonly jwksCooldownMs?: number;
  /** Told when an issuer's discovery or keys cannot be loaded (URL and cause), and when they load again. */
  readonly onIssuerKeys?: (event: IssuerKeysEvent) => void;
  /** Per-request timeout of discovery and key set fetches (doctor's --check-timeout). */
  readonly issuerTimeoutMs?: number;
}

export interface Adapters {
  readonly clock: Clock;
  readonly verifier: IdTokenVerifier;
  readonly facts: FactSource;
  readonly replay: ReplayStore;
  readonly rateLimiter: RateLimiter;
  /** Failed authentications per client address (limits.failedAuthPerMinutePerAddress). */
  readonly failedAuthLimiter: RateLimiter;
  readonly audit: AuditSink;
  readonly signer: BrokerJwtSigner;
  readonly ca: CertificateAuthority | undefined;
  readonly minters: GrantMinters;
  /** The audit file sink when the broker owns it (reopened on SIGHUP, closed on shutdown). */
  readonly fileAudit: FileAuditSink | undefined;
  /** Re-read the signing keys file (no-op when keys were passed in). */
  reloadSigningKeys(): Promise<void>;
  close(): Promise<void>;
}

export function trustedIssuers(config: BrokerConfig): TrustedIssuer[] {
  return config.gitlab.map((entry) => ({ issuer: entry.issuer, audience: entry.audience, apiUrl: entry.apiUrl, maxTokenAgeSeconds: entry.maxTokenAge }));
}

/** The ID token verifier for `issuers` (default: all of the config's), with the options serve uses. */
export function buildVerifier(config: BrokerConfig, issuers = trustedIssuers(config), overrides: Pick<AdapterOverrides, 'clock' | 'jwksCooldownMs' | 'onIssuerKeys' | 'issuerTimeoutMs'> = {}): IdTokenVerifier {
  const clock = overrides.clock ?? systemClock;
  return createIdTokenVerifier({
    issuers, clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, jwksCooldownMs: overrides.jwksCooldownMs,
    jwksOutageWindowMs: new Map(config.gitlab.flatMap((entry) => (entry.jwksOutageWindow === undefined ? [] : [[entry.issuer, entry.jwksOutageWindow * 1000] as const]))),
    onKeysStatus: overrides.onIssuerKeys, timeoutMs: overrides.issuerTimeoutMs, now: () => clock.now().getTime(),
  });
}

/**
 * Job and approval facts from one GitLab client; each issuer's API calls are bounded by its `requestTimeout` (default
 * limits.factTimeout). `nowMs` (the broker's clock) runs its caches and lookup budget.
 */
function buildGitLabClient(config: BrokerConfig, nowMs: () => number): GitLabClient {
  return createGitLabClient({
    token: createTokenReader(new Map(config.gitlab.map((entry) => [entry.issuer, entry.apiTokenFile]))),
    requestTimeoutMs: config.limits.factTimeout * 1000,
    issuerRequestTimeoutMs: new Map(config.gitlab.flatMap((entry) => (entry.requestTimeout === undefined ? [] : [[entry.issuer, entry.requestTimeout * 1000] as const]))),
    lookupBudget: { perProject: config.limits.gitlabLookupsPerProject, windowMs: config.limits.gitlabLookupWindow * 1000 },
    clock: nowMs,
  });
}

function minter<K extends GrantKind>(mint: GrantMinter<K>['mint']): GrantMinter<K> {
  return { mint };
}

/** The shared Redis connection when the config asks for it (and no replay store was passed in). Connects in the background. */
function buildRedis(config: BrokerConfig, overrides: AdapterOverrides, log: OperationalLog | undefined): RedisConnection | undefined {
  if (overrides.replay || config.replay.store !== 'redis') return undefined;
  const { url, caFile, passwordFile } = config.replay;
  try {
    return createRedisConnection({
      url, caFile, passwordFile,
      onStateChange: (state, detail) => (state === 'up' ? log?.info('Redis connected', { target: detail }) : log?.error('Redis connection lost; exchanges answer 503 until it is back', { error: detail })),
    });
  } catch (err) {
    throw new ConfigError(`config: replay: ${(err as Error).message}`, { cause: err });
  }
}

/** `log` hears about the Redis connection going down and coming back. */
export async function buildAdapters(config: BrokerConfig, overrides: AdapterOverrides = {}, log?: OperationalLog): Promise<Adapters> {
  // Built (and the Google client libraries loaded) only when the config has a google section.
  const ownGoogle = overrides.google ? undefined : await createGoogleMinter(config.google);
  const google = overrides.google ?? ownGoogle;
  const clock = overrides.clock ?? systemClock;
  const nowMs = () => clock.now().getTime();
  const signingKeys = overrides.signingKeys ?? (await readSigningJwks(config.signing.keysFile));
  const signer = await createJwtSigner(config.server.publicUrl, signingKeys);
  const ca = overrides.ca ?? (config.linkerd ? createCertificateAuthority(config.linkerd, clock.now()) : undefined);
  const fileAudit = overrides.audit ? undefined : await createAuditSink(config.audit.file, { clock }).catch((err: unknown) => {
    throw new ConfigError(`config: audit.file: cannot open ${config.audit.file ?? ''} for appending: ${(err as Error).message}`, { cause: err });
  });
  const gitlab = overrides.facts ? undefined : buildGitLabClient(config, nowMs);
  // One line per grant kind: its adapter, or undefined when the config has no section for it.
  const minters = {
    google,
    linkerd: ca && minter<'linkerd'>((plan, context) => ca.issue(plan, context)),
    token: minter<'token'>((plan, context) => signer.sign(plan, context)),
  } satisfies { readonly [K in GrantKind]: GrantMinter<K> | undefined };
  // Last, so nothing above can fail and leave its reconnect loop running.
  let redis: RedisConnection | undefined;
  try {
    redis = buildRedis(config, overrides, log);
  } catch (err) {
    await fileAudit?.close();
    await gitlab?.close();
    throw err;
  }

  return {
    clock,
    verifier: buildVerifier(config, trustedIssuers(config), overrides),
    facts: overrides.facts ?? (gitlab as GitLabClient),
    replay: overrides.replay ?? (redis && config.replay.store === 'redis' ? createRedisReplayStore(redis, { waitReplicas: config.replay.waitReplicas, now: nowMs }) : createMemoryReplayStore(nowMs)),
    // The project budget is shared through Redis when there is one; the per-address limit guards each process.
    rateLimiter: redis ? createRedisRateLimiter(redis, config.limits.requestsPerMinutePerProject) : createMemoryRateLimiter(config.limits.requestsPerMinutePerProject),
    failedAuthLimiter: createMemoryRateLimiter(config.limits.failedAuthPerMinutePerAddress),
    audit: overrides.audit ?? (fileAudit as FileAuditSink),
    signer,
    ca,
    minters,
    fileAudit,
    async reloadSigningKeys() {
      if (overrides.signingKeys) return;
      await signer.rotate(await readSigningJwks(config.signing.keysFile), clock.now());
    },
    async close() {
      await redis?.close();
      await Promise.all([fileAudit?.close(), gitlab?.close(), ownGoogle?.close()]);
    },
  };
}

/** The kinds these adapters can mint. */
export function mintableKinds(minters: GrantMinters): ReadonlySet<GrantKind> {
  return new Set((Object.keys(minters) as GrantKind[]).filter((kind) => minters[kind] !== undefined));
}
