/**
 * A gitbeaker `requesterFn` for single-object GETs (the job lookup every exchange makes) over node:http(s) with
 * kept-alive sockets. Why not the shared fetch-based requester (gitbeaker-requester.ts): Node 20's fetch (undici behind
 * WHATWG streams) costs ~300 µs of CPU per call on the benchmark machine against ~60 µs for `http.request` on a
 * kept-alive socket, and this call is on the exchange hot path (docs/performance.md).
 * The same rules as the shared requester: GET only, the caller's deadline, no redirects (node:http never follows one;
 * a 3xx is a failed status), JSON only, a bounded body, and errors that name a path and a status and nothing else.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { GitLabApiError, type GitbeakerRequesterFn, unsupported } from './gitbeaker-requester.js';

type ResourceOptions = Parameters<GitbeakerRequesterFn>[0];
type Requester = ReturnType<GitbeakerRequesterFn>;

interface JsonResponse {
  readonly body: unknown;
  readonly headers: Record<string, string>;
  readonly status: number;
}

/** A job is a few KiB; anything near this is not the document we asked for. */
const MAX_BODY_BYTES = 1024 * 1024;
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

// Free sockets are unref'd by the agents, so they never keep the process alive.
const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 64 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 64 }) };

function retryAfter(value: string | undefined): number | undefined {
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(Math.ceil(seconds), 3600) : undefined;
}

function plainHeaders(response: IncomingMessage): Record<string, string> {
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) plain[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return plain;
}

/**
 * GET `url` as JSON within a deadline: an AbortSignal (the request's), or a number of milliseconds for a client shared
 * across requests, whose callers race their own deadline (withDeadline) and leave this bound to stop the socket.
 */
export function getJson(url: URL, headers: Record<string, string>, deadline: AbortSignal | number): Promise<JsonResponse> {
  const path = url.pathname;
  const secure = url.protocol === 'https:';
  const signal = typeof deadline === 'number' ? undefined : deadline;
  let timedOut = false;
  return new Promise<JsonResponse>((resolve, reject) => {
    const fail = (failure: 'unreachable' | 'timeout', error: unknown) =>
      reject(new GitLabApiError(signal?.aborted || timedOut ? 'timeout' : failure, path, undefined, undefined, { cause: { message: error instanceof Error ? error.message : String(error) } }));
    const request = (secure ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', agent: secure ? agents.https : agents.http, headers: { accept: 'application/json', ...headers }, ...(signal ? { signal } : { timeout: deadline as number }) },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          response.resume();
          reject(new GitLabApiError('status', path, status, retryAfter(response.headers['retry-after'])));
          return;
        }
        if (!JSON_TYPE.test(response.headers['content-type'] ?? '')) {
          response.resume();
          reject(new GitLabApiError('not_json', path, status, undefined));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            response.destroy();
            reject(new GitLabApiError('not_json', path, status, undefined));
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => fail('unreachable', error));
        response.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse((chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString('utf8'));
          } catch {
            reject(new GitLabApiError('not_json', path, status, undefined));
            return;
          }
          resolve({ body, headers: plainHeaders(response), status });
        });
      },
    );
    request.on('error', (error) => fail('unreachable', error));
    if (!signal) {
      request.on('timeout', () => {
        timedOut = true;
        request.destroy(new Error('GitLab API deadline'));
      });
    }
    request.end();
  });
}

/**
 * A requester bound to one request's deadline, for resources that GET one object (no pagination, no coalescing).
 * @example new Jobs({ host, token, queryTimeout: null, rateLimits: {}, requesterFn: createHttpGetRequester(signal) })
 */
export function createHttpGetRequester(deadline: AbortSignal | number): GitbeakerRequesterFn {
  return (resource: ResourceOptions): Requester => {
    const get = async (endpoint: string, options?: { searchParams?: Record<string, unknown> }): Promise<JsonResponse> => {
      const url = new URL(endpoint, resource.url.endsWith('/') ? resource.url : `${resource.url}/`);
      for (const [key, value] of Object.entries(options?.searchParams ?? {})) {
        if (value === undefined || value === null) continue;
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`unsupported query parameter ${key}`);
        url.searchParams.set(key, String(value));
      }
      const headers: Record<string, string> = { ...resource.headers };
      for (const [name, value] of Object.entries(resource.authHeaders)) headers[name] = await value();
      return getJson(url, headers, deadline);
    };
    return { get, post: unsupported, put: unsupported, patch: unsupported, delete: unsupported } as unknown as Requester;
  };
}
