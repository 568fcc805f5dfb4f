/**
 * In-memory fakes of every port the use cases depend on, each checked by the compiler against its interface
 * (`satisfies`), for fast use-case tests without HTTP. Each fake records what it was asked, so a test can assert on
 * what happened (and what did not).
 */
import { createRecentFacts, EXPLAIN_FACTS_TTL_MS } from '../../src/app/authorize.js';
import type { BrokerDeps, OperationalLog } from '../../src/app/deps.js';
import { BrokerError } from '../../src/core/errors.js';
import type { GrantKind } from '../../src/core/grants.js';
import { compilePolicy, type CompiledPolicy } from '../../src/core/policy/compile.js';
import type { Session } from '../../src/core/session.js';
import type {
  AuditPhase,
  AuditRecord,
  AuditSink,
  CertificateAuthority,
  Clock,
  FactSource,
  GrantMinter,
  IdTokenVerifier,
  JwtSigner,
  RateLimiter,
  ReplayStore,
  TrustedIssuer,
} from '../../src/ports.js';
import { scenarioPrincipal, SCENARIO } from './approval-scenarios.js';

export const FAKE_ISSUER: TrustedIssuer = { issuer: 'https://gitlab.example.com', audience: 'https://broker.example.com', apiUrl: 'https://gitlab.example.com/api/v4', maxTokenAgeSeconds: 7200 };
/** 2027-01-15T08:00:00Z; the scenario's ID token expires in 2033. */
export const FAKE_NOW = new Date(1_800_000_000_000);

/** Tokens are `token:<jti>`; anything else is refused as a real verifier would. */
export function fakeVerifier(): IdTokenVerifier & { calls: number } {
  const verifier = {
    calls: 0,
    async verify(token: string) {
      verifier.calls++;
      if (!token.startsWith('token:')) throw new BrokerError('invalid_token', 'not a compact JWS');
      return { issuer: FAKE_ISSUER, principal: scenarioPrincipal({ jti: token.slice('token:'.length) }) };
    },
    ready: async () => true,
  } satisfies IdTokenVerifier & { calls: number };
  return verifier;
}

/** Job status `status` (mutable) unless `failWith` is set, in which case every lookup throws it. */
type ControllableFacts = FactSource & { calls: number; status: string; failWith: unknown };

export function fakeFacts(jobStatus = 'running'): ControllableFacts {
  const facts: ControllableFacts = {
    calls: 0,
    status: jobStatus,
    failWith: undefined as unknown,
    async jobStatus() {
      facts.calls++;
      if (facts.failWith !== undefined) throw facts.failWith;
      return facts.status;
    },
    async approvals() {
      facts.calls++;
      if (facts.failWith !== undefined) throw facts.failWith;
      return {};
    },
  };
  return facts;
}

export function fakeReplay(): ReplayStore & { reserved: Set<string>; released: string[] } {
  const reserved = new Set<string>();
  const released: string[] = [];
  return {
    reserved,
    released,
    async reserve(key) {
      if (reserved.has(key)) return false;
      reserved.add(key);
      return true;
    },
    async release(key) {
      reserved.delete(key);
      released.push(key);
    },
    ready: async () => true,
  } satisfies ReplayStore & { reserved: Set<string>; released: string[] };
}

/** Keeps every record; `failPhases` makes writes of those phases fail as a full disk would. */
export function fakeAudit(failPhases: readonly AuditPhase[] = []): AuditSink & { records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return {
    records,
    async write(record) {
      if (failPhases.includes(record.phase)) throw new BrokerError('audit_unavailable', 'the audit record could not be written', { cause: new Error('ENOSPC') });
      records.push(record);
    },
    ready: async () => true,
  } satisfies AuditSink & { records: AuditRecord[] };
}

export const unlimited = { take: async () => ({ ok: true, retryAfterSeconds: 0 }), peek: async () => ({ ok: true, retryAfterSeconds: 0 }) } satisfies RateLimiter;

export function fakeSigner(): JwtSigner {
  return {
    issuer: 'https://broker.example.com',
    async sign(plan, context) {
      return { token: `jwt:${plan.audience}:${context.requestId}`, expiresAt: plan.expiresAt };
    },
    publicJwks: () => ({ keys: [] }),
    // Not signed: the use-case tests trust their own fake; the real signer's checks are tested over HTTP.
    signSession: (session) => ({ token: `session.${Buffer.from(JSON.stringify(session)).toString('base64url')}`, expiresAt: new Date(session.principal.exp * 1000) }),
    async verifySession(token, now) {
      if (!token.startsWith('session.')) throw new BrokerError('invalid_token', 'not a session token of this broker');
      const session = JSON.parse(Buffer.from(token.slice('session.'.length), 'base64url').toString()) as Session;
      // The real signer's refusals: a session ends when the ID token it came from expires.
      if (session.principal.exp * 1000 <= now.getTime()) throw new BrokerError('token_expired', 'the session has ended (the ID token it came from has expired)');
      return session;
    },
  } satisfies JwtSigner;
}

export function fakeCa(): CertificateAuthority {
  return {
    async issue(plan) {
      const identity = `${plan.serviceAccount}.${plan.namespace}.serviceaccount.identity.linkerd.cluster.local`;
      return { certificate: 'LEAF', chain: 'CHAIN', trustAnchors: 'ANCHORS', identity, spiffeId: `spiffe://cluster.local/ns/${plan.namespace}/sa/${plan.serviceAccount}`, serialNumber: '01', expiresAt: plan.notAfter };
    },
    trustAnchorsPem: () => 'ANCHORS',
    check: () => undefined,
    consumerProblems: () => [],
  } satisfies CertificateAuthority;
}

/** Wraps a minter to count calls and to fail on demand (a coded upstream failure, or a bug). */
export function controllableMinter<K extends GrantKind>(inner: GrantMinter<K>): GrantMinter<K> & { calls: number; failWith: unknown } {
  const minter = {
    calls: 0,
    failWith: undefined as unknown,
    async mint(plan: Parameters<GrantMinter<K>['mint']>[0], context: Parameters<GrantMinter<K>['mint']>[1]) {
      minter.calls++;
      if (minter.failWith !== undefined) throw minter.failWith;
      return inner.mint(plan, context);
    },
  } satisfies GrantMinter<K> & { calls: number; failWith: unknown };
  return minter;
}

/** Project 20's deploy rule: a broker token and a Linkerd identity, only while the job runs. */
export function fakePolicy(): CompiledPolicy {
  return compilePolicy([{
    source: 'usecase.yaml',
    data: {
      version: 1,
      rules: [{
        name: 'payments-deploy',
        when: { project_id: SCENARIO.projectId, environment: SCENARIO.environment },
        require: { jobRunning: true },
        grant: { token: { audiences: ['https://deploy.internal'] }, linkerd: { serviceAccount: 'deploy', namespace: 'ci' } },
      }],
    },
  }]);
}

export const silentLog = { error: () => undefined, warn: () => undefined, info: () => undefined } satisfies OperationalLog;

export interface FakeWorld {
  readonly deps: BrokerDeps;
  readonly verifier: ReturnType<typeof fakeVerifier>;
  readonly facts: ReturnType<typeof fakeFacts>;
  readonly replay: ReturnType<typeof fakeReplay>;
  readonly audit: ReturnType<typeof fakeAudit>;
  readonly minters: { readonly token: ReturnType<typeof controllableMinter<'token'>>; readonly linkerd: ReturnType<typeof controllableMinter<'linkerd'>> };
  readonly errors: string[];
}

/** BrokerDeps made only of fakes. */
export function fakeWorld(options: { failAuditPhases?: readonly AuditPhase[]; jobStatus?: string } = {}): FakeWorld {
  const signer = fakeSigner();
  const ca = fakeCa();
  const verifier = fakeVerifier();
  const facts = fakeFacts(options.jobStatus);
  const replay = fakeReplay();
  const audit = fakeAudit(options.failAuditPhases);
  const minters = {
    token: controllableMinter<'token'>({ mint: (plan, context) => signer.sign(plan, context) }),
    linkerd: controllableMinter<'linkerd'>({ mint: (plan, context) => ca.issue(plan, context) }),
  };
  const errors: string[] = [];
  const policy = fakePolicy();
  const clock = { now: () => FAKE_NOW } satisfies Clock;
  const deps: BrokerDeps = {
    clock, verifier, facts, replay, audit, signer, ca, minters, rateLimiter: unlimited,
    policy: () => policy, issuers: [FAKE_ISSUER], factTimeoutMs: 1000, recentExplainFacts: createRecentFacts(EXPLAIN_FACTS_TTL_MS), clockToleranceSeconds: 30,
    log: { ...silentLog, error: (message) => void errors.push(message) },
  };
  return { deps, verifier, facts, replay, audit, minters, errors };
}
