/**
 * Invalid exchange requests, one kind per way a request can be wrong before it is worth any network I/O, with the
 * answer each must get; and a bare node:http POST for floods (test/flood.test.ts, bench/flood.ts). Every kind that
 * carries a well-formed token carries the same *spare* token, signed by the issuer and never exchanged: each kind is
 * refused before the jti is reserved, so after a flood that token must still be exchangeable once.
 */
import { request, type Agent } from 'node:http';

export interface FloodRequest {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface GarbageKind {
  readonly name: string;
  readonly status: number;
  readonly code: string;
  readonly request: FloodRequest;
}

const JSON_TYPE = 'application/json';
export const VALID_BODY = '{"grants":{"token":{}}}';

/** The same token with one signature byte changed: the key is known (cached), the signature does not verify. */
export function withBadSignature(token: string): string {
  const [header, payload, signature = ''] = token.split('.');
  const bytes = Buffer.from(signature, 'base64url');
  bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x01;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

/** The six kinds of garbage, around one spare token (valid, never spent). */
export function garbageKinds(spare: string): readonly GarbageKind[] {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': JSON_TYPE });
  return [
    { name: 'no token', status: 401, code: 'invalid_token', request: { headers: { 'content-type': JSON_TYPE }, body: VALID_BODY } },
    { name: 'malformed token', status: 401, code: 'invalid_token', request: { headers: bearer('not-a.jwt'), body: VALID_BODY } },
    { name: 'bad signature', status: 401, code: 'invalid_token', request: { headers: bearer(withBadSignature(spare)), body: VALID_BODY } },
    { name: 'oversized body', status: 413, code: 'payload_too_large', request: { headers: bearer(spare), body: JSON.stringify({ grants: { token: {} }, pad: 'x'.repeat(70 * 1024) }) } },
    { name: 'wrong content type', status: 400, code: 'invalid_request', request: { headers: { ...bearer(spare), 'content-type': 'text/plain' }, body: VALID_BODY } },
    { name: 'unknown grant', status: 400, code: 'invalid_request', request: { headers: bearer(spare), body: '{"grants":{"aws":{}}}' } },
  ];
}

/** A valid exchange request for `token`. */
export function validRequest(token: string): FloodRequest {
  return { headers: { authorization: `Bearer ${token}`, 'content-type': JSON_TYPE }, body: VALID_BODY };
}

export interface PostOutcome {
  readonly status: number;
  /** 'ok' for a 2xx, else the broker's X-Broker-Code (or the status, or a connection error). */
  readonly code: string;
}

/** One POST /v1/exchange over `agent`; resolves (never rejects) when the whole response has arrived. */
export function postExchange(agent: Agent, base: URL, shape: FloodRequest): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const req = request(
      { agent, host: base.hostname, port: base.port, method: 'POST', path: '/v1/exchange', headers: { ...shape.headers, 'content-length': Buffer.byteLength(shape.body) } },
      (res) => {
        const status = res.statusCode ?? 0;
        const code = status < 300 ? 'ok' : String(res.headers['x-broker-code'] ?? status);
        res.on('data', () => undefined);
        res.on('end', () => resolve({ status, code }));
        res.on('error', () => resolve({ status: 0, code: 'response_error' }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, code: `connection_error ${err.code ?? ''}`.trim() }));
    req.end(shape.body);
  });
}
