/**
 * The composition root: the only place that knows every adapter. `createBroker` turns a config into a running
 * (not yet listening) broker; serve, dev mode and the tests all go through it.
 */
import { createServer, type Server } from 'node:http';
import { watch, type FSWatcher } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ERROR_TITLE } from './core/errors.js';
import { PROBLEM_TYPE_BASE } from './http/problem.js';
import type { Router } from 'express';
import type { JWK } from 'jose';
import { createAuditSink, createOperationalLogger } from './adapters/audit/winston-audit.js';
import { createCertificateAuthority } from './adapters/ca/index.js';
import { createTokenReader } from './adapters/gitlab/api-client.js';
import { createGitLabApprovalSource } from './adapters/gitlab/approvals.js';
import { createGitLabJobStatusSource } from './adapters/gitlab/jobs.js';
import { createIdTokenVerifier } from './adapters/gitlab/verifier.js';
import { loadPolicy } from './adapters/policy/load.js';
import { createJwtSigner, readSigningJwks } from './adapters/jwt/signer.js';
import { createMemoryReplayStore } from './adapters/store/memory-replay.js';
import { createMemoryRateLimiter } from './adapters/store/memory-rate-limit.js';
import type { BrokerDeps, OperationalLog } from './app/deps.js';
import { createPolicyHolder, type PolicyHolder } from './app/policy-holder.js';
import type { BrokerConfig } from './config/schema.js';
import { createApiRoutes } from './http/api-routes.js';
import { createApp } from './http/app.js';
import { createMetrics, type BrokerMetrics } from './http/metrics.js';
import type { AuditSink, CertificateAuthority, Clock, FactSource, GoogleTokenMinter, ReplayStore, TrustedIssuer } from './ports.js';

export interface BrokerOverrides {
  readonly clock?: Clock;
  readonly log?: OperationalLog;
  readonly audit?: AuditSink;
  readonly replay?: ReplayStore;
  readonly facts?: FactSource;
  readonly ca?: CertificateAuthority;
  readonly google?: GoogleTokenMinter;
  readonly signingKeys?: readonly JWK[];
  readonly extraRoutes?: Router;
  readonly defaultMetrics?: boolean;
  /** JWKS cooldown for unknown kids (tests shorten it). */
  readonly jwksCooldownMs?: number;
}

export interface Broker {
  readonly server: Server;
  readonly deps: BrokerDeps;
  readonly policy: PolicyHolder;
  readonly metrics: BrokerMetrics;
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

export const CLOCK_TOLERANCE_SECONDS = 30;

/** Headers past even our raised limit still get the contract's 413 in problem+json, not Node's bare 431. */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const code = tooLarge ? 'payload_too_large' : 'invalid_request';
  const status = tooLarge ? 413 : 400;
  const body = JSON.stringify({ type: `${PROBLEM_TYPE_BASE}${code}`, title: ERROR_TITLE[code], status, code, detail: tooLarge ? 'the request headers are too large' : 'malformed HTTP request', requestId: randomUUID() });
  socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Payload Too Large' : 'Bad Request'}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function trustedIssuers(config: BrokerConfig): TrustedIssuer[] {
  return config.gitlab.map((entry) => ({ issuer: entry.issuer, audience: entry.audience, apiUrl: entry.apiUrl, maxTokenAgeSeconds: entry.maxTokenAge }));
}

export async function createBroker(config: BrokerConfig, overrides: BrokerOverrides = {}): Promise<Broker> {
  if (!overrides.replay && config.replay.store !== 'memory') {
    // Silently falling back to memory would make tokens single-use per replica only.
    throw new Error(`config: replay.store ${config.replay.store} is not available in this version; use memory (one replica)`);
  }
  const log = overrides.log ?? createOperationalLogger();
  const clock = overrides.clock ?? { now: () => new Date() };
  const issuers = trustedIssuers(config);
  const factTimeoutMs = config.limits.factTimeout * 1000;

  const policy = createPolicyHolder(() => loadPolicy(config.policy.path), log);
  if (!(await policy.reload())) throw new Error(`policy: ${config.policy.path} did not load; refusing to start`);

  const fileAudit = overrides.audit ? undefined : await createAuditSink(config.audit.file);
  const audit = overrides.audit ?? (fileAudit as AuditSink);
  const signer = await createJwtSigner(config.server.publicUrl, overrides.signingKeys ?? (await readSigningJwks(config.signing.keysFile)));
  const tokenReader = createTokenReader(new Map(config.gitlab.map((entry) => [entry.issuer, entry.apiTokenFile])));
  const facts: FactSource = overrides.facts ?? {
    ...createGitLabJobStatusSource({ token: tokenReader, timeoutMs: factTimeoutMs }),
    ...createGitLabApprovalSource({ fetchToken: tokenReader, timeoutMs: factTimeoutMs }),
  };
  const verifier = createIdTokenVerifier({
    issuers, clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, jwksCooldownMs: overrides.jwksCooldownMs,
    onKeysStatus: (event) => (event.loaded ? log.info('issuer keys loaded', { issuer: event.issuer }) : log.warn('issuer keys could not be loaded; not ready', { issuer: event.issuer, url: event.url, cause: event.cause })),
  });
  const replay = overrides.replay ?? createMemoryReplayStore();
  const ca = overrides.ca ?? (config.linkerd ? createCertificateAuthority(config.linkerd, clock.now()) : undefined);
  // Not fatal: openssl and Node still accept such a chain, but the mesh's own consumers will not (docs/linkerd.md).
  for (const reason of ca?.consumerProblems() ?? []) log.warn('the Linkerd issuer chain will be refused by mesh consumers', { reason });

  const deps: BrokerDeps = {
    clock, verifier, facts, replay, audit, signer, ca, google: overrides.google,
    rateLimiter: createMemoryRateLimiter(config.limits.requestsPerMinutePerProject),
    policy: policy.current, factTimeoutMs, clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, log,
  };
  const metrics = createMetrics({ defaultMetrics: overrides.defaultMetrics });
  const app = createApp(deps, {
    metrics,
    extraRoutes: overrides.extraRoutes,
    readiness: [
      { name: 'policy', check: async () => policy.current() !== undefined },
      { name: 'issuers', check: () => verifier.ready() },
      { name: 'replay', check: () => replay.ready() },
      { name: 'audit', check: () => audit.ready() },
      ...(ca ? [{ name: 'ca', check: async () => { ca.check(clock.now()); return true; } }] : []),
    ],
  });
  // Large enough to see an oversized Authorization header and answer 413 ourselves instead of Node's bare 431.
  const apiRoutes = createApiRoutes(deps, metrics);
  const server = createServer({ maxHeaderSize: 64 * 1024, requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    if (!apiRoutes(req, res)) app(req, res);
  });
  server.on('clientError', answerClientError);

  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  // SIGHUP: reload the policy, reopen the audit file (log rotation) and re-read the signing keys (key rotation; keys
  // that left the file stay published until their tokens have expired). A bad key file keeps the current keys.
  const reloadSigningKeys = async () => {
    if (overrides.signingKeys) return;
    try {
      await signer.rotate(await readSigningJwks(config.signing.keysFile), clock.now());
      log.info('signing keys reloaded', { file: config.signing.keysFile });
    } catch (err) {
      log.error('signing key reload failed; keeping the current keys', { error: (err as Error).message });
    }
  };
  const onHangup = () => {
    void policy.reload();
    void fileAudit?.reopen();
    void reloadSigningKeys();
  };
  if (config.policy.watch) {
    try {
      watcher = watch(config.policy.path, () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => void policy.reload(), 200);
      });
      watcher.unref();
    } catch (err) {
      log.warn('policy file watch unavailable; reload with SIGHUP', { error: (err as Error).message });
    }
  }
  process.on('SIGHUP', onHangup);

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
      process.off('SIGHUP', onHangup);
      clearTimeout(debounce);
      watcher?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fileAudit?.close();
    },
  };
}
