/**
 * POST /v1/exchange, /v1/refresh and /v1/explain on plain node:http, entered through entry.ts. Same contract as the express routes:
 * the 16 KiB header and 64 KiB body limits, problem+json with stable codes, an audit record for every refusal.
 *
 * Before the use case: the bearer token is read, the client address's budget of failed authentications is checked
 * and the body is read; a refusal at this stage gets its audit record here. From the call on, the use case writes
 * every audit record of the request. A failed authentication (401) spends one unit of the address's budget, and an
 * address with none left is answered 429 before its token or body is looked at.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sha256Hex } from '../app/authorize.js';
import type { BrokerDeps } from '../app/deps.js';
import { exchange } from '../app/exchange.js';
import { explain } from '../app/explain.js';
import { refresh } from '../app/refresh.js';
import { fitRecord, refusalFields } from '../app/refusal.js';
import { BrokerError, type ErrorCode } from '../core/errors.js';
import type { RateLimiter } from '../ports.js';
import { readTextBody } from './body.js';
import { sendProblem, toBrokerError } from './problem.js';

export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_AUTHORIZATION_BYTES = 16 * 1024;

/** The routes served here (POST only); every other request goes on to the express app. */
export const API_ENDPOINTS = ['/v1/exchange', '/v1/refresh', '/v1/explain'] as const;

export type ApiEndpoint = (typeof API_ENDPOINTS)[number];

export interface ApiRoutesOptions {
  readonly deps: BrokerDeps;
  readonly failedAuth: RateLimiter;
  readonly clientAddress: (req: IncomingMessage) => string;
}

/** What the entry records in its metrics. */
export interface ApiOutcome {
  readonly code: ErrorCode | 'ok';
  readonly rule: string;
}

/**
 * The bearer token of an Authorization header, or '' when there is none. The scheme is case-insensitive (RFC 9110
 * §11.1); an oversized header is refused before anything decodes it.
 */
export function bearerToken(header: string | undefined): string {
  if (header === undefined) return '';
  if (header.length > MAX_AUTHORIZATION_BYTES) throw new BrokerError('payload_too_large', 'the Authorization header is larger than 16 KiB');
  if (header.startsWith('Bearer ')) return header.slice(7).trim();
  return header.length > 7 && header.charCodeAt(6) === 0x20 && header.slice(0, 6).toLowerCase() === 'bearer' ? header.slice(7).trim() : '';
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

/** Returns the handler of these routes; it never rejects, and resolves with the outcome for the metrics. */
export function createApiRoutes(options: ApiRoutesOptions): (endpoint: ApiEndpoint, req: IncomingMessage, res: ServerResponse, requestId: string) => Promise<ApiOutcome> {
  const { deps, failedAuth } = options;

  /** The audit record of a request refused before its use case ran. */
  function auditRefusal(endpoint: ApiEndpoint, requestId: string, token: string, address: string, failure: BrokerError): Promise<void> {
    return deps.audit.write(fitRecord({
      event: endpoint === '/v1/explain' ? 'explain' : endpoint === '/v1/refresh' ? 'refresh' : 'exchange', phase: 'denied', requestId, outcome: 'denied',
      ...refusalFields(failure), tokenSha256: token ? sha256Hex(token) : undefined, client: address,
    }));
  }

  return async (endpoint, req, res, requestId) => {
    let rule = '';
    let token = '';
    let address: string | undefined;
    let inUseCase = false;
    try {
      token = bearerToken(req.headers.authorization);
      address = options.clientAddress(req);
      const standing = await failedAuth.peek(address, deps.clock.now());
      if (!standing.ok) throw new BrokerError('rate_limited', 'too many failed authentications from this address', { retryAfter: standing.retryAfterSeconds });
      const bodyText = await readTextBody(req, MAX_BODY_BYTES);
      inUseCase = true; // from here the use case writes its own audit record on every path
      if (endpoint === '/v1/exchange' || endpoint === '/v1/refresh') {
        const result = await (endpoint === '/v1/exchange' ? exchange : refresh)(deps, { requestId, token, bodyText });
        rule = result.rule;
        sendJson(res, requestId, JSON.stringify(result));
      } else {
        // ?defer=deploymentApprovals: the deploy gate's verify job has no deployment; the exchange judges that later.
        const deferDeploymentApprovals = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').getAll('defer').includes('deploymentApprovals');
        const result = await explain(deps, { requestId, token, bodyText, deferDeploymentApprovals });
        rule = result.rule ?? '';
        sendJson(res, requestId, JSON.stringify(result));
      }
      return { code: 'ok', rule };
    } catch (err) {
      let failure = toBrokerError(err);
      if (!(err instanceof BrokerError)) deps.log.error('request failed unexpectedly', { requestId, error: String(err) });
      if (failure.status === 401 && address !== undefined) await failedAuth.take(address, deps.clock.now()).catch(() => undefined);
      if (!inUseCase) {
        try {
          await auditRefusal(endpoint, requestId, token, address ?? options.clientAddress(req), failure);
        } catch (auditErr) {
          failure = toBrokerError(auditErr);
        }
      }
      if (!res.headersSent) {
        res.setHeader('X-Request-Id', requestId);
        sendProblem(res, failure, requestId);
      }
      return { code: failure.code, rule };
    }
  };
}
