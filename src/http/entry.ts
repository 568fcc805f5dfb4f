/**
 * The one HTTP entry: every request gets its server-generated request id and its metrics here, whichever route serves
 * it. POST /v1/exchange, /v1/refresh and /v1/explain go to api-routes.ts on plain node:http (express's per-request
 * machinery was a large share of an exchange's CPU, docs/performance.md); everything else goes to the express app.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type express from 'express';
import proxyAddr from 'proxy-addr';
import type { BrokerDeps } from '../app/deps.js';
import { echo } from '../core/echo.js';
import { isErrorCode } from '../core/errors.js';
import type { RateLimiter } from '../ports.js';
import { createApiRoutes, type ApiEndpoint } from './api-routes.js';
import type { BrokerMetrics, MetricCode } from './metrics.js';
import { setSecurityHeaders } from './security-headers.js';

export interface HttpEntryOptions {
  readonly deps: BrokerDeps;
  readonly metrics: BrokerMetrics;
  /** Serves every route but the three API routes; its `trust proxy` setting decides the client address for all. */
  readonly app: express.Express;
  /** Failed authentications per client address. */
  readonly failedAuth: RateLimiter;
}

const REQUEST_ID_HEADER = 'X-Request-Id';

function apiEndpointOf(req: IncomingMessage): ApiEndpoint | undefined {
  if (req.method !== 'POST') return undefined;
  const url = req.url ?? '';
  const query = url.indexOf('?');
  const path = query < 0 ? url : url.slice(0, query);
  return path === '/v1/exchange' || path === '/v1/explain' || path === '/v1/refresh' ? path : undefined;
}

/** The request id the entry gave this response (express error handlers use it for problem+json). */
export function requestIdOf(res: ServerResponse): string {
  return String(res.getHeader(REQUEST_ID_HEADER) ?? '');
}

/**
 * The caller's address as express's `req.ip` computes it: the socket's peer, or with `trust proxy` set, the nearest
 * X-Forwarded-For entry not from a trusted proxy. Bounded, since a trusted-everything setting passes caller text.
 */
export function clientAddress(req: IncomingMessage, app: express.Express): string {
  if (app.get('trust proxy') === false) return req.socket.remoteAddress ?? 'unknown'; // the default, on every exchange
  const trust = app.get('trust proxy fn') as Parameters<typeof proxyAddr>[1];
  return echo(proxyAddr(req, trust) ?? 'unknown');
}

/** The metric code of a response from the express app: `ok`, the error code it sent, or else its status. */
function otherRouteCode(res: ServerResponse): MetricCode {
  if (res.statusCode < 400) return 'ok';
  const code = res.getHeader('X-Broker-Code');
  return typeof code === 'string' && isErrorCode(code) ? code : `${res.statusCode}`;
}

/** Returns the server's request listener. */
export function createHttpEntry(options: HttpEntryOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { app, metrics } = options;
  const api = createApiRoutes({ ...options, clientAddress: (req) => clientAddress(req, app) });
  return (req, res) => {
    // Always generated here: a caller-chosen id would let records in the audit log and certificates collide.
    const requestId = randomUUID();
    const startedAt = performance.now();
    const endpoint = apiEndpointOf(req);
    setSecurityHeaders(res);
    if (endpoint !== undefined) {
      void api(endpoint, req, res, requestId).then(
        ({ code, rule }) => metrics.observe(endpoint, code, rule, (performance.now() - startedAt) / 1000),
        (err: unknown) => options.deps.log.error('request failed unexpectedly', { requestId, error: String(err) }),
      );
      return;
    }
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.once('finish', () => {
      metrics.observe('other', otherRouteCode(res), '', (performance.now() - startedAt) / 1000);
    });
    app(req, res);
  };
}

/**
 * Answers with `Connection: close`, so Node closes the connection after the response, on a connection's
 * `maxRequests`-th request (0: no bound) and on every request while `draining()`. Node's own maxRequestsPerSocket only
 * marks that response and leaves the socket open until the keep-alive timeout.
 */
export function closeConnectionsWhen(server: Server, maxRequests: number, draining: () => boolean): void {
  const served = new WeakMap<Socket, number>();
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const count = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, count);
    if (draining() || count === maxRequests) res.setHeader('Connection', 'close');
  });
}
