/**
 * createApp(deps): the HTTP shell (no listen) for discovery, keys, trust bundle and operations. Routes read the
 * request, call one use case and map the result; every error becomes problem+json with a stable code. Requests come
 * through entry.ts (request id, metrics); the three API routes, POST /v1/exchange, /v1/refresh and /v1/explain, are
 * served by api-routes.ts before express sees the request.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { BrokerError } from '../core/errors.js';
import type { BrokerDeps } from '../app/deps.js';
import { requestIdOf } from './entry.js';
import type { BrokerMetrics } from './metrics.js';
import { sendProblem, toBrokerError } from './problem.js';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<boolean>;
}

export interface AppOptions {
  readonly metrics: BrokerMetrics;
  readonly readiness: readonly ReadinessCheck[];
  /** express's `trust proxy`: whether X-Forwarded-For names the client (config server.trustProxy). */
  readonly trustProxy?: boolean;
  /** Mounted before the broker routes (dev mode's development issuer). */
  readonly extraRoutes?: Router;
}

export function createApp(deps: BrokerDeps, options: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('trust proxy', options.trustProxy ?? false);

  if (options.extraRoutes) app.use(options.extraRoutes);

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
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const failure = toBrokerError(err);
    if (res.headersSent) return;
    sendProblem(res, failure, requestIdOf(res));
  });

  return app;
}
