/**
 * GitLab API GETs over node:http(s) with kept-alive sockets, for every GitLab call the broker makes: the job lookup on
 * each exchange (a requester for single-object resources, below) and the approvals requester's transport
 * (gitbeaker-requester.ts, which adds pagination and coalescing). Not fetch: Node 20's fetch (undici behind WHATWG
 * streams) costs ~300 µs more CPU per call than `http.request` on the benchmark machine (docs/performance.md).
 * The rules: GET only, a deadline, no redirects (a 3xx is refused as unreachable, so a PRIVATE-TOKEN header never
 * reaches another host), JSON only, a bounded body, and errors that name a path and a status and nothing else.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Deployments } from '@gitbeaker/rest';

type ResourceConfig = NonNullable<ConstructorParameters<typeof Deployments>[0]>;
export type GitbeakerRequesterFn = NonNullable<ResourceConfig['requesterFn']>;

export type GitLabFailure = 'unreachable' | 'timeout' | 'status' | 'not_json';

/** A failed GitLab API call. Holds no headers and no query string, so logging it cannot leak the token. */
export class GitLabApiError extends Error {
  override readonly name = 'GitLabApiError';
  constructor(
    readonly failure: GitLabFailure,
    readonly path: string,
    readonly status: number | undefined,
    readonly retryAfterSeconds: number | undefined,
    options?: ErrorOptions,
  ) {
    super(`GitLab API ${path}: ${failure}${status === undefined ? '' : ` ${status}`}`, options);
  }
}

/** Our requesters only read: any other method is our own mistake. */
export function unsupported(): never {
  throw new TypeError('the GitLab requester is read-only');
}

export type ResourceOptions = Parameters<GitbeakerRequesterFn>[0];
export type Requester = ReturnType<GitbeakerRequesterFn>;

export interface JsonResponse {
  readonly body: unknown;
  readonly headers: Record<string, string>;
  readonly status: number;
}

/** A job is a few KiB and a page of 100 deployments well under this; anything near it is not the document we asked for. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

// Free sockets are unref'd by the agents, so they never keep the process alive.
const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 64 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 64 }) };

function retryAfter(value: string | undefined): number | undefined {
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(Math.ceil(seconds), 3600) : undefined;
}

/** Where one GET goes: parsed once per client, not per call. */
interface Target {
  readonly secure: boolean;
  readonly hostname: string;
  readonly port: string;
  readonly path: string;
}

/** The target of an absolute URL. */
export function targetOf(url: URL): Target {
  return { secure: url.protocol === 'https:', hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path: `${url.pathname}${url.search}` };
}

/**
 * GET `target` as JSON. `timeoutMs` bounds the socket, so an abandoned call still ends; `signal` (optional) stops it
 * earlier. Callers without a signal race their own deadline (gatherFacts). A redirect is refused, never followed: a
 * PRIVATE-TOKEN header must not reach another host.
 */
export function getJson(target: Target, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<JsonResponse> {
  const path = target.path.includes('?') ? target.path.slice(0, target.path.indexOf('?')) : target.path;
  let timedOut = false;
  return new Promise<JsonResponse>((resolve, reject) => {
    const fail = (failure: 'unreachable' | 'timeout', error: unknown) =>
      reject(new GitLabApiError(timedOut || signal?.aborted ? 'timeout' : failure, path, undefined, undefined, { cause: { message: error instanceof Error ? error.message : String(error) } }));
    const request = (target.secure ? httpsRequest : httpRequest)(
      { method: 'GET', hostname: target.hostname, port: target.port, path: target.path, agent: target.secure ? agents.https : agents.http, headers, timeout: timeoutMs, ...(signal ? { signal } : {}) },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          response.resume();
          reject(new GitLabApiError('unreachable', path, status, undefined, { cause: { message: 'redirect refused' } }));
          return;
        }
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
          // Node's own header object: single-valued headers are strings, and gitbeaker reads only `link` of it.
          resolve({ body, headers: response.headers as Record<string, string>, status });
        });
      },
    );
    request.on('error', (error) => fail('unreachable', error));
    request.on('timeout', () => {
      timedOut = true;
      request.destroy(new Error('GitLab API deadline'));
    });
    request.end();
  });
}

/** Relative API paths as gitbeaker builds them (ids and names URI-encoded); nothing that could leave /api/v4/. */
const API_ENDPOINT = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9_%.~-]+(?:\/[A-Za-z0-9_%.~-]+)*$/;

function decamelize(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/**
 * gitbeaker's query options as GitLab's query string: snake_case keys, sorted (one key per distinct query, whatever
 * order gitbeaker built it in), '' when there are none (no URLSearchParams built on the job lookup's hot path).
 */
export function queryString(searchParams: Record<string, unknown> | undefined): string {
  let query: URLSearchParams | undefined;
  for (const [key, value] of searchParams ? Object.entries(searchParams) : []) {
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`unsupported query parameter ${key}`);
    (query ??= new URLSearchParams()).set(decamelize(key), String(value));
  }
  if (query === undefined) return '';
  query.sort();
  return query.toString();
}

/** The request headers of a gitbeaker resource: its own, its auth header resolved, and `accept: application/json`. */
export async function resolveHeaders(resource: ResourceOptions): Promise<Record<string, string>> {
  const headers: Record<string, string> = { accept: 'application/json', ...resource.headers };
  for (const [name, value] of Object.entries(resource.authHeaders)) headers[name] = await value();
  return headers;
}

/**
 * A requester for resources that GET one object (no pagination, no coalescing), shared by every request: the socket is
 * bounded by `timeoutMs` and callers race their own deadline.
 * @example new Jobs({ host, token, queryTimeout: null, rateLimits: {}, requesterFn: createHttpGetRequester(5000) })
 */
export function createHttpGetRequester(timeoutMs: number): GitbeakerRequesterFn {
  return (resource: ResourceOptions): Requester => {
    const base = new URL(resource.url.endsWith('/') ? resource.url : `${resource.url}/`);
    const { secure, hostname, port } = targetOf(base);
    const origin = { secure, hostname, port };
    // Resolved once per client (the broker builds its clients with the fixed read_api token it read at start): the
    // pending promise first, then the plain object itself, so later calls do not wait a microtask for it.
    let headers: Promise<Record<string, string>> | Record<string, string> | undefined;
    const get = async (endpoint: string, options?: { searchParams?: Record<string, unknown> }): Promise<JsonResponse> => {
      if (!API_ENDPOINT.test(endpoint)) throw new TypeError(`unexpected GitLab API endpoint ${JSON.stringify(endpoint)}`);
      const query = queryString(options?.searchParams);
      headers ??= resolveHeaders(resource).then(
        (value) => (headers = value),
        (err: unknown) => {
          headers = undefined;
          throw err;
        },
      );
      const search = query ? `?${query}` : '';
      return getJson({ ...origin, path: `${base.pathname}${endpoint}${search}` }, headers instanceof Promise ? await headers : headers, timeoutMs);
    };
    return { get, post: unsupported, put: unsupported, patch: unsupported, delete: unsupported } as unknown as Requester;
  };
}
