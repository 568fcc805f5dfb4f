/**
 * POST /v1/exchange, /v1/refresh and /v1/explain on plain node:http. Every exchange passes here, and express's per-request
 * machinery (prototype swaps, router walk, res helpers) was a large share of its CPU and allocation
 * (docs/performance.md); the rest of the API stays on the express app. Same contract: the 16 KiB header and 64 KiB
 * body limits, problem+json with stable codes, an audit record for every refusal, metrics per code and rule.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sha256Hex } from '../app/authorize.js';
import type { BrokerDeps } from '../app/deps.js';
import { exchange } from '../app/exchange.js';
import { explain } from '../app/explain.js';
import { refresh } from '../app/refresh.js';
import { BrokerError } from '../core/errors.js';
import { readTextBody } from './body.js';
import type { BrokerMetrics } from './metrics.js';
import { sendProblem, toBrokerError } from './problem.js';

export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_AUTHORIZATION_BYTES = 16 * 1024;

/** The routes served here (POST only); every other request goes on to the express app. */
export const API_ENDPOINTS = ['/v1/exchange', '/v1/refresh', '/v1/explain'] as const;

type Endpoint = (typeof API_ENDPOINTS)[number];

/** The bearer token, or '' when absent; an oversized header is refused before anything decodes it. */
function bearerToken(header: string | undefined): string {
  if (header === undefined) return '';
  if (header.length > MAX_AUTHORIZATION_BYTES) throw new BrokerError('payload_too_large', 'the Authorization header is larger than 16 KiB');
  return header.startsWith('Bearer ') ? header.slice(7).trim() : '';
}

function endpointOf(req: IncomingMessage): Endpoint | undefined {
  if (req.method !== 'POST') return undefined;
  const url = req.url ?? '';
  const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
  return API_ENDPOINTS.find((endpoint) => endpoint === path);
}

function sendJson(res: ServerResponse, requestId: string, json: string): void {
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
    'Cache-Control': 'no-store',
    'X-Request-Id': requestId,
  });
  res.end(json);
}

/** Returns a request listener for these routes; it answers false for every other request (left to express). */
export function createApiRoutes(deps: BrokerDeps, metrics: BrokerMetrics): (req: IncomingMessage, res: ServerResponse) => boolean {
  async function serve(endpoint: Endpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID(); // never the caller's: audit records and certificates must not collide
    const startedAt = performance.now();
    let code = 'ok';
    let rule = '';
    let inUseCase = false;
    try {
      const token = bearerToken(req.headers.authorization);
      const bodyText = await readTextBody(req, MAX_BODY_BYTES);
      inUseCase = true; // from here the use case writes its own audit record on every path
      if (endpoint === '/v1/exchange' || endpoint === '/v1/refresh') {
        const result = await (endpoint === '/v1/exchange' ? exchange : refresh)(deps, { requestId, token, bodyText });
        rule = result.rule;
        sendJson(res, requestId, JSON.stringify(result));
      } else {
        const result = await explain(deps, { requestId, token, bodyText });
        rule = result.rule ?? '';
        sendJson(res, requestId, JSON.stringify(result));
      }
    } catch (err) {
      let failure = toBrokerError(err);
      if (!inUseCase) {
        const header = req.headers.authorization ?? '';
        const token = header.length <= MAX_AUTHORIZATION_BYTES && header.startsWith('Bearer ') ? header.slice(7).trim() : header;
        try {
          await deps.audit.write({
            event: endpoint === '/v1/explain' ? 'explain' : endpoint === '/v1/refresh' ? 'refresh' : 'exchange', phase: 'denied', requestId, outcome: 'denied',
            code: failure.code, detail: failure.detail, tokenSha256: token ? sha256Hex(token) : undefined,
          });
        } catch (auditErr) {
          failure = toBrokerError(auditErr);
        }
      }
      if (!(err instanceof BrokerError)) deps.log.error('request failed unexpectedly', { requestId, error: String(err) });
      code = failure.code;
      if (!res.headersSent) {
        res.setHeader('X-Request-Id', requestId);
        sendProblem(res, failure, requestId);
      }
    } finally {
      metrics.observe(endpoint, code, rule, (performance.now() - startedAt) / 1000);
    }
  }

  return (req, res) => {
    const endpoint = endpointOf(req);
    if (endpoint === undefined) return false;
    void serve(endpoint, req, res);
    return true;
  };
}
