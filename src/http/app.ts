/**
 * createApp(deps): the HTTP shell (no listen). Routes read the request, call one use case and map the result; every
 * error becomes problem+json with a stable code.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { BrokerError } from '../core/errors.js';
import type { BrokerDeps } from '../app/deps.js';
import { sha256Hex } from '../app/authorize.js';
import { exchange, type ExchangeResult } from '../app/exchange.js';
import { explain } from '../app/explain.js';
import type { BrokerMetrics } from './metrics.js';
import { readTextBody } from './body.js';
import { sendProblem, toBrokerError } from './problem.js';

export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_AUTHORIZATION_BYTES = 16 * 1024;

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<boolean>;
}

export interface AppOptions {
  readonly metrics: BrokerMetrics;
  readonly readiness: readonly ReadinessCheck[];
  /** Mounted before the broker routes (dev mode's development issuer). */
  readonly extraRoutes?: Router;
}

interface Locals {
  requestId: string;
  /** Set once a use case runs: from then on it writes the audit record itself. */
  audited: boolean;
  startedAt: bigint;
  endpoint: string;
  rule: string;
}

function locals(res: Response): Locals {
  return res.locals as Locals;
}

/** The bearer token, or '' when absent; an oversized header is refused before anything decodes it. */
function bearerToken(req: Request): string {
  const header = req.headers.authorization;
  if (header === undefined) return '';
  if (header.length > MAX_AUTHORIZATION_BYTES) throw new BrokerError('payload_too_large', 'the Authorization header is larger than 16 KiB');
  return header.startsWith('Bearer ') ? header.slice(7).trim() : '';
}

/** The exchange result as JSON, serialised once (Dates become ISO strings through their toJSON). */
function resultJson(result: ExchangeResult): string {
  return JSON.stringify(result);
}

/** What res.json sends (same bytes and Content-Type), written straight to the Node response. */
function sendJson(res: Response, json: string): void {
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json), 'Cache-Control': 'no-store' });
  res.end(json);
}

const MEASURED_ENDPOINTS: ReadonlySet<string> = new Set(['/v1/exchange', '/v1/explain']);

export function createApp(deps: BrokerDeps, options: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  app.set('case sensitive routing', true);
  app.set('strict routing', true);

  app.use((req, res, next) => {
    // Always generated here: a caller-chosen id would let records in the audit log and certificates collide.
    const requestId = randomUUID();
    Object.assign(res.locals, { requestId, audited: false, startedAt: process.hrtime.bigint(), endpoint: req.path, rule: '' } satisfies Locals);
    res.setHeader('X-Request-Id', requestId);
    res.on('finish', () => {
      const state = locals(res);
      const endpoint = MEASURED_ENDPOINTS.has(state.endpoint) ? state.endpoint : 'other';
      const code = res.statusCode < 400 ? 'ok' : String(res.getHeader('X-Broker-Code') ?? res.statusCode);
      options.metrics.observe(endpoint, code, state.rule, Number(process.hrtime.bigint() - state.startedAt) / 1e9);
    });
    next();
  });

  if (options.extraRoutes) app.use(options.extraRoutes);

  app.post('/v1/exchange', async (req, res) => {
    const token = bearerToken(req);
    const bodyText = await readTextBody(req, MAX_BODY_BYTES);
    locals(res).audited = true;
    const result = await exchange(deps, { requestId: locals(res).requestId, token, bodyText });
    locals(res).rule = result.rule;
    sendJson(res, resultJson(result));
  });

  app.post('/v1/explain', async (req, res) => {
    const token = bearerToken(req);
    const bodyText = await readTextBody(req, MAX_BODY_BYTES);
    locals(res).audited = true;
    const result = await explain(deps, { requestId: locals(res).requestId, token, bodyText });
    locals(res).rule = result.rule ?? '';
    sendJson(res, JSON.stringify(result));
  });

  app.get('/.well-known/openid-configuration', (_req, res) => {
    const issuer = deps.signer.issuer;
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json({
      issuer,
      jwks_uri: `${issuer.replace(/\/$/, '')}/.well-known/jwks.json`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'rule', 'project_id', 'project_path', 'pipeline_id', 'job_id', 'ref_path', 'sha', 'environment', 'user_login', 'source_issuer'],
    });
  });

  app.get('/.well-known/jwks.json', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json(deps.signer.publicJwks(deps.clock.now()));
  });

  app.get('/v1/trust-bundle', (_req, res) => {
    if (!deps.ca) throw new BrokerError('not_found', 'no Linkerd trust anchors are configured');
    res.type('application/x-pem-file').send(deps.ca.trustAnchorsPem());
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      options.readiness.map(async (item) => [item.name, await item.check().catch(() => false)] as const),
    );
    const ready = results.every(([, ok]) => ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks: Object.fromEntries(results) });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });

  app.use((_req: Request, _res: Response, next: NextFunction) => {
    next(new BrokerError('not_found', 'no such endpoint'));
  });

  // Express 5 routes async rejections here too.
  app.use(async (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let failure = toBrokerError(err);
    const state = locals(res);
    if (req.method === 'POST' && MEASURED_ENDPOINTS.has(req.path) && !state.audited) {
      // Refused before the use case ran (oversized header or body, unreadable body): audited here.
      const header = req.headers.authorization ?? '';
      const token = header.length <= MAX_AUTHORIZATION_BYTES && header.startsWith('Bearer ') ? header.slice(7).trim() : header;
      try {
        await deps.audit.write({
          event: req.path === '/v1/explain' ? 'explain' : 'exchange', phase: 'denied', requestId: state.requestId, outcome: 'denied',
          code: failure.code, detail: failure.detail, tokenSha256: token ? sha256Hex(token) : undefined,
        });
      } catch (auditErr) {
        failure = toBrokerError(auditErr);
      }
    }
    res.setHeader('X-Broker-Code', failure.code);
    if (res.headersSent) return;
    sendProblem(res, failure, state.requestId);
  });

  return app;
}
