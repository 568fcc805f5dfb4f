/**
 * GitLab API GETs over undici's connection pools (kept-alive sockets), for every GitLab call the broker makes: the job
 * lookup on each exchange (a requester for single-object resources, below) and the approvals requester's transport
 * (gitbeaker-requester.ts, which adds pagination and coalescing). Not fetch, which puts WHATWG streams on top of the
 * same client (~300 µs more CPU per call), and not node:http, whose request and response objects cost ~70 µs more CPU
 * per job lookup under load than undici's dispatcher (docs/performance.md).
 * The rules: GET only, a deadline, no redirects (a 3xx is refused as unreachable, so a PRIVATE-TOKEN header never
 * reaches another host), JSON only, a bounded body, and errors that name a path and a status and nothing else.
 */
import { Pool, errors } from 'undici';
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

function retryAfter(value: string | undefined): number | undefined {
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(Math.ceil(seconds), 3600) : undefined;
}

/** Where one GET goes: parsed once per client, not per call. */
interface Target {
  /** scheme://host[:port], as URL.origin gives it (IPv6 hosts in brackets). */
  readonly origin: string;
  readonly path: string;
}

/** The target of an absolute URL. */
export function targetOf(url: URL): Target {
  return { origin: url.origin, path: `${url.pathname}${url.search}` };
}

// One connection pool per GitLab origin, for the life of the process. undici closes sockets idle for longer than the
// keep-alive timeout and unrefs idle ones, so a pool never keeps the process alive. Redirects are never followed: a
// bare Pool.dispatch has no redirect handler, and a 3xx is refused below.
const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (pool === undefined) {
    pool = new Pool(origin, { connections: 64, maxResponseSize: MAX_BODY_BYTES, keepAliveTimeout: 4_000 });
    pools.set(origin, pool);
  }
  return pool;
}

/**
 * Response headers as one lowercase record (a repeated header joined with ", ", as node:http does for most), without a
 * prototype as node:http's own, so a header named like an Object.prototype member is just a header.
 */
function headerRecord(raw: readonly Buffer[]): Record<string, string> {
  const headers = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1').toLowerCase();
    const value = (raw[i + 1] as Buffer).toString('latin1');
    headers[name] = Object.hasOwn(headers, name) ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}

function failureOf(error: Error, aborted: boolean): GitLabFailure {
  if (aborted || error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) return 'timeout';
  if (error instanceof errors.ResponseExceededMaxSizeError) return 'not_json';
  return 'unreachable';
}

const ABORTED = 'GitLab API call aborted';

/**
 * GET `target` as JSON through undici's dispatcher: no stream per response, the chunks are kept and parsed once at the
 * end. `timeoutMs` bounds the wait for the headers and each gap in the body, so an abandoned call still ends;
 * `signal` (optional) stops it earlier. Callers without a signal race their own deadline (gatherFacts). A redirect is
 * refused, never followed: a PRIVATE-TOKEN header must not reach another host.
 */
export function getJson(target: Target, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<JsonResponse> {
  const query = target.path.indexOf('?');
  const path = query < 0 ? target.path : target.path.slice(0, query);
  return new Promise<JsonResponse>((resolve, reject) => {
    let settled = false;
    let aborted = false;
    let cancel: ((err?: Error) => void) | undefined;
    let status = 0;
    let responseHeaders: Record<string, string> = {};
    const chunks: Buffer[] = [];
    const settle = (outcome: JsonResponse | GitLabApiError): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (outcome instanceof GitLabApiError) reject(outcome);
      else resolve(outcome);
    };
    const onAbort = (): void => {
      aborted = true;
      cancel?.(new Error(ABORTED));
      settle(new GitLabApiError('timeout', path, undefined, undefined));
    };
    if (signal?.aborted) {
      settle(new GitLabApiError('timeout', path, undefined, undefined));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    poolFor(target.origin).dispatch(
      { method: 'GET', path: target.path, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
      {
        onConnect(abort) {
          cancel = abort;
          if (aborted) abort(new Error(ABORTED));
        },
        onHeaders(code, rawHeaders) {
          if (code < 200) return true; // 1xx: informational, the answer follows
          status = code;
          responseHeaders = headerRecord(rawHeaders);
          if (status >= 300 && status < 400) {
            settle(new GitLabApiError('unreachable', path, status, undefined, { cause: { message: 'redirect refused' } }));
          } else if (status >= 300) {
            settle(new GitLabApiError('status', path, status, retryAfter(responseHeaders['retry-after'])));
          } else if (!JSON_TYPE.test(responseHeaders['content-type'] ?? '')) {
            settle(new GitLabApiError('not_json', path, status, undefined));
          }
          return true; // a refused answer is still read to its end (bounded), so its socket stays reusable
        },
        onData(chunk) {
          if (!settled) chunks.push(chunk);
          return true;
        },
        onComplete() {
          if (settled) return;
          let body: unknown;
          try {
            body = JSON.parse((chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString('utf8'));
          } catch {
            settle(new GitLabApiError('not_json', path, status, undefined));
            return;
          }
          settle({ body, headers: responseHeaders, status });
        },
        onError(error) {
          settle(new GitLabApiError(failureOf(error, aborted), path, status === 0 ? undefined : status, undefined, { cause: { message: error.message } }));
        },
      },
    );
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
    const origin = base.origin;
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
      return getJson({ origin, path: `${base.pathname}${endpoint}${search}` }, headers instanceof Promise ? await headers : headers, timeoutMs);
    };
    return { get, post: unsupported, put: unsupported, patch: unsupported, delete: unsupported } as unknown as Requester;
  };
}
