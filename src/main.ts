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
import { createHttpEntry } from './http/entry.js';
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
  close(): Promise<void>;
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

export async function createBroker(config: BrokerConfig, overrides: BrokerOverrides = {}): Promise<Broker> {
  const log = overrides.log ?? createOperationalLogger();
  const adapters = await buildAdapters(config, {
    ...overrides,
    onIssuerKeys: (event) => (event.loaded ? log.info('issuer keys loaded', { issuer: event.issuer }) : log.warn('issuer keys could not be loaded; not ready', { issuer: event.issuer, url: event.url, cause: event.cause })),
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
  const policy = createPolicyHolder(async () => {
    const loaded = firstLoad ?? (await loadCheckedPolicy());
    firstLoad = undefined;
    return loaded;
  }, log);
  await policy.reload();

  const { clock, verifier, replay, audit, ca } = adapters;
  // Not fatal: openssl and Node still accept such a chain, but the mesh's own consumers will not (docs/linkerd.md).
  for (const reason of ca?.consumerProblems() ?? []) log.warn('the Linkerd issuer chain will be refused by mesh consumers', { reason });
  const factTimeoutMs = config.limits.factTimeout * 1000;
  const deps: BrokerDeps = {
    clock, verifier, issuers: trustedIssuers(config), facts: adapters.facts, replay, audit, signer: adapters.signer, ca, minters: adapters.minters,
    rateLimiter: adapters.rateLimiter, policy: policy.current, factTimeoutMs, recentExplainFacts: createRecentFacts(EXPLAIN_FACTS_TTL_MS), clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, log,
  };
  const metrics = createMetrics({ defaultMetrics: overrides.defaultMetrics });
  const app = createApp(deps, {
    metrics,
    trustProxy: config.server.trustProxy,
    extraRoutes: overrides.extraRoutes,
    readiness: [
      { name: 'policy', check: async () => policy.current() !== undefined },
      { name: 'issuers', check: () => verifier.ready() },
      { name: 'replay', check: () => replay.ready() },
      { name: 'audit', check: () => audit.ready() },
      ...(ca ? [{ name: 'ca', check: async () => { ca.check(clock.now()); return true; } }] : []),
    ],
  });
  // maxHeaderSize: large enough to see an oversized Authorization header and answer 413 ourselves instead of Node's
  // bare 431. A client still sending headers after headersTimeout is cut (408); Node checks every
  // connectionsCheckingInterval, 30 s unless set, which would let slow-header clients hold sockets well past it.
  const headersTimeoutMs = config.limits.headersTimeout * 1000;
  const server = createServer(
    { maxHeaderSize: 64 * 1024, headersTimeout: headersTimeoutMs, requestTimeout: Math.max(30_000, headersTimeoutMs), connectionsCheckingInterval: Math.min(1000, headersTimeoutMs), keepAliveTimeout: 5_000 },
    createHttpEntry({ deps, metrics, app, failedAuth: adapters.failedAuthLimiter }),
  );
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
    async close() {
      stopHangup();
      stopWatching();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await adapters.close();
    },
  };
}
