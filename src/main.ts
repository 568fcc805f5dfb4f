/**
 * The composition root: the only place that knows every adapter. `createBroker` turns a config into a running (not yet
 * listening) broker; serve, dev mode and the tests all go through it. Adapters come from `buildAdapters`, process
 * signals and file watching from lifecycle.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Router } from 'express';
import { createOperationalLogger } from './adapters/audit/winston-audit.js';
import { buildAdapters, CLOCK_TOLERANCE_SECONDS, mintableKinds, trustedIssuers, type AdapterOverrides } from './adapters/build.js';
import type { IssuerKeysEvent } from './adapters/gitlab/verifier.js';
import { loadPolicy } from './adapters/policy/load.js';
import type { BrokerDeps, OperationalLog } from './app/deps.js';
import { createRecentFacts, EXPLAIN_FACTS_TTL_MS } from './app/authorize.js';
import { createPolicyHolder, type PolicyHolder } from './app/policy-holder.js';
import { ConfigError } from './config/load.js';
import type { BrokerConfig } from './config/schema.js';
import { unmintableGrants, type GrantKind } from './core/grants.js';
import type { CompiledPolicy } from './core/policy/compile.js';
import { createApp } from './http/app.js';
import { answerClientError } from './http/client-error.js';
import { closeConnectionsWhen, createHttpEntry } from './http/entry.js';
import { createMetrics, type BrokerMetrics } from './http/metrics.js';
import { onHangup, watchPolicyFile } from './lifecycle.js';

export { CLOCK_TOLERANCE_SECONDS, trustedIssuers } from './adapters/build.js';

export interface BrokerOverrides extends AdapterOverrides {
  readonly log?: OperationalLog;
  readonly extraRoutes?: Router;
  readonly defaultMetrics?: boolean;
}

export interface Broker {
  readonly server: Server;
  readonly deps: BrokerDeps;
  readonly policy: PolicyHolder;
  readonly metrics: BrokerMetrics;
  listen(port?: number, host?: string): Promise<string>;
  /**
   * Readiness false, stop accepting, let requests in flight finish for up to `graceMs` (0: cut them now), then flush
   * the audit sink and close the adapters.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Refuses a policy that grants a kind these adapters cannot mint, naming the rule, the kind and the config section it
 * needs: at start (a configuration error) and on every reload (the last good policy stays).
 */
export function assertMintable(policy: CompiledPolicy, mintable: ReadonlySet<GrantKind>): void {
  const missing = unmintableGrants(policy.rules, mintable);
  if (missing.length === 0) return;
  const lines = missing.map(({ rule, kind, configSection }) => `config: policy rule ${rule} grants ${kind}, but the config has no ${configSection} section to mint it`);
  throw new ConfigError(lines.join('\n'));
}

/** An issuer's keys, for the operator: loaded again, unreachable with cached keys still verifying (until when), or unreachable. */
function logIssuerKeys(log: OperationalLog): (event: IssuerKeysEvent) => void {
  return (event) => {
    if (event.loaded) log.info('issuer keys loaded', { issuer: event.issuer });
    else if (event.cachedKeysUntil) log.warn('issuer keys could not be refreshed; verifying with the cached keys until the outage window ends', { issuer: event.issuer, url: event.url, cause: event.cause, cachedKeysUntil: event.cachedKeysUntil.toISOString() });
    else log.warn('issuer keys could not be loaded; not ready', { issuer: event.issuer, url: event.url, cause: event.cause });
  };
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

export async function createBroker(config: BrokerConfig, overrides: BrokerOverrides = {}): Promise<Broker> {
  const log = overrides.log ?? createOperationalLogger();
  const adapters = await buildAdapters(config, {
    ...overrides,
    onIssuerKeys: logIssuerKeys(log),
  }, log);
  const mintable = mintableKinds(adapters.minters);
  const loadCheckedPolicy = async () => {
    const loaded = await loadPolicy(config.policy.path);
    assertMintable(loaded, mintable);
    return loaded;
  };
  let firstLoad: CompiledPolicy | undefined;
  try {
    firstLoad = await loadCheckedPolicy();
  } catch (err) {
    await adapters.close();
    throw err;
  }
  const metrics = createMetrics({ defaultMetrics: overrides.defaultMetrics });
  const policy = createPolicyHolder(async () => {
    const loaded = firstLoad ?? (await loadCheckedPolicy());
    firstLoad = undefined;
    return loaded;
  }, log, metrics.policyReload);
  await policy.reload();

  const { clock, verifier, replay, audit, ca } = adapters;
  // Not fatal: openssl and Node still accept such a chain, but the mesh's own consumers will not (docs/linkerd.md).
  for (const reason of ca?.consumerProblems() ?? []) log.warn('the Linkerd issuer chain will be refused by mesh consumers', { reason });
  const factTimeoutMs = config.limits.factTimeout * 1000;
  const deps: BrokerDeps = {
    clock, verifier, issuers: trustedIssuers(config), facts: adapters.facts, replay, audit, signer: adapters.signer, ca, minters: adapters.minters,
    rateLimiter: adapters.rateLimiter, policy: policy.current, factTimeoutMs, recentExplainFacts: createRecentFacts(EXPLAIN_FACTS_TTL_MS), clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, log,
  };
  let draining = false;
  const app = createApp(deps, {
    metrics,
    trustProxy: config.server.trustProxy,
    extraRoutes: overrides.extraRoutes,
    readiness: [
      { name: 'accepting', check: async () => !draining },
      { name: 'policy', check: async () => policy.current() !== undefined },
      { name: 'issuers', check: () => verifier.ready() },
      { name: 'replay', check: () => replay.ready() },
      { name: 'audit', check: () => audit.ready() },
      ...(ca ? [{ name: 'ca', check: async () => { ca.check(clock.now()); return true; } }] : []),
    ],
  });
  // maxHeaderSize: large enough to see an oversized Authorization header and answer 413 ourselves instead of Node's
  // bare 431. A client still sending headers after headersTimeout, or its body after requestTimeout, is cut (408); Node
  // checks every connectionsCheckingInterval, 30 s unless set, which would let slow clients hold sockets well past it.
  // Node refuses a request deadline shorter than the header deadline, so the longer of the two applies.
  const headersTimeoutMs = config.limits.headersTimeout * 1000;
  const server = createServer(
    {
      maxHeaderSize: 64 * 1024,
      headersTimeout: headersTimeoutMs,
      requestTimeout: Math.max(config.server.requestTimeout * 1000, headersTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, headersTimeoutMs),
      keepAliveTimeout: config.server.keepAliveTimeout * 1000,
    },
    createHttpEntry({ deps, metrics, app, failedAuth: adapters.failedAuthLimiter }),
  );
  closeConnectionsWhen(server, config.server.maxRequestsPerSocket, () => draining);
  server.on('clientError', answerClientError);

  // SIGHUP: reload the policy, reopen the audit file (log rotation) and re-read the signing keys (key rotation; keys
  // that left the file stay published until their tokens have expired). A bad key file keeps the current keys.
  const stopHangup = onHangup(() => {
    void policy.reload();
    adapters.fileAudit?.reopen().catch((err: unknown) =>
      log.error('audit file could not be reopened; exchanges answer 503 audit_unavailable until it can be', { file: config.audit.file, error: (err as Error).message }),
    );
    adapters.reloadSigningKeys().then(
      () => log.info('signing keys reloaded', { file: config.signing.keysFile }),
      (err: unknown) => log.error('signing key reload failed; keeping the current keys', { error: (err as Error).message }),
    );
  });
  const stopWatching = config.policy.watch ? watchPolicyFile(config.policy.path, () => void policy.reload(), log) : () => undefined;

  return {
    server, deps, policy, metrics,
    listen(port = config.server.port, host = config.server.host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address() as AddressInfo;
          const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve(`http://${shownHost}:${address.port}`);
        });
      });
    },
    async close(graceMs = 0) {
      stopHangup();
      stopWatching();
      draining = true; // readiness false at once
      // From here a request still arriving on an open keep-alive connection is answered, and its connection closed.
      // Stops accepting and closes idle connections; resolves once the last connection has ended.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (graceMs > 0 && !(await settlesWithin(closed, graceMs))) {
        log.warn('shutdown grace passed; cutting the connections still open', { graceSeconds: graceMs / 1000 });
      }
      server.closeAllConnections();
      await closed;
      // Flushes the audit sink and closes the GitLab pool and the Redis connection.
      await adapters.close();
    },
  };
}
