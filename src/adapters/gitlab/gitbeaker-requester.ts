/**
 * The one `requesterFn` the GitLab client gives its @gitbeaker resources, replacing @gitbeaker/rest's default. Why
 * not the default: it cannot take a per-request AbortSignal (only a per-resource queryTimeout), it retries 429 ten
 * times in ~250 ms, follows redirects (a custom PRIVATE-TOKEN header survives a cross-host redirect), returns HTML
 * bodies as strings, and its errors carry the Request object whose headers hold the API token. This one: GET only,
 * over the client's transport (http-get.ts: no redirects, JSON only, a bounded body), the request's signal, errors
 * that name a path and a status and nothing else, `Link` and `x-next-page` normalised so either drives pagination,
 * and (for approval lookups) identical in-flight GETs coalesced, never cached.
 *
 * gitbeaker hands a requester only the query options of a call, so the request's signal travels there, under the
 * SIGNAL key (see `withSignal`); a call without one is our own mistake and throws.
 */
import type { Deployments } from '@gitbeaker/rest';
import type { RequestSignal } from '../../ports.js';
import { GitLabApiError, type GitLabTransport, type JsonResponse } from './http-get.js';

type ResourceConfig = NonNullable<ConstructorParameters<typeof Deployments>[0]>;
export type GitbeakerRequesterFn = NonNullable<ResourceConfig['requesterFn']>;
type ResourceOptions = Parameters<GitbeakerRequesterFn>[0];
type Requester = ReturnType<GitbeakerRequesterFn>;

/** The query-option key that carries a call's RequestSignal (the request's deadline) to the requester; never sent to GitLab. */
const SIGNAL = 'brokerSignal';

/**
 * gitbeaker call options plus the request's signal.
 * @example jobs.show(project, jobId, withSignal({}, signal))
 */
export function withSignal<T extends object>(options: T, signal: RequestSignal): T {
  return { ...options, [SIGNAL]: signal };
}

/** gitbeaker types ids as numbers but only interpolates them into the path: ids stay the strings GitLab sent. */
export function pathId(id: string): number {
  return id as unknown as number;
}

export interface RequesterOptions {
  readonly transport: GitLabTransport;
  /** The broker's read_api token for this issuer ('' for none: public projects only). Never part of an error. */
  readonly token: string;
  /** Bound on the wait for the headers and on each gap in a body (config `gitlab[].requestTimeout`). */
  readonly requestTimeoutMs: number;
  /**
   * Share identical in-flight GETs (approval lookups: concurrent requests of one pipeline ask the same things). Off
   * for job lookups, one per request and distinct per job, where the bookkeeping would only cost CPU on every exchange.
   */
  readonly coalesce: boolean;
}

interface InFlight {
  readonly promise: Promise<JsonResponse>;
  /** Ends the shared GET: no AbortController per call (a signal costs ~3.5 µs to create, on every exchange). */
  readonly stop: () => void;
  waiters: number;
}

/** What withSignal put under SIGNAL: an AbortSignal or the use case's RequestDeadline. */
function isRequestSignal(value: unknown): value is RequestSignal {
  return typeof value === 'object' && value !== null && typeof (value as RequestSignal).addEventListener === 'function' && typeof (value as RequestSignal).aborted === 'boolean';
}

const NEXT_LINK = /<([^>]+)>;\s*rel="next"/;

/** Make `Link: rel="next"` and `x-next-page` imply each other; the paginator reads x-next-page. */
function normalisePagination(url: URL, headers: Record<string, string>): void {
  const nextPage = headers['x-next-page']?.trim();
  const link = headers.link ?? '';
  const nextLink = NEXT_LINK.exec(link)?.[1];
  if (nextLink === undefined && nextPage) {
    const next = new URL(url);
    next.searchParams.set('page', nextPage);
    headers.link = `${link ? `${link}, ` : ''}<${next.href}>; rel="next"`;
  } else if (nextLink !== undefined && !nextPage) {
    const page = new URL(nextLink, url).searchParams.get('page');
    if (page) headers['x-next-page'] = page;
  }
}

/** Relative API paths as gitbeaker builds them (ids and names URI-encoded); nothing that could leave /api/v4/. */
const API_ENDPOINT = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9_%.~-]+(?:\/[A-Za-z0-9_%.~-]+)*$/;

function decamelize(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/**
 * gitbeaker's query options as GitLab's query string: snake_case keys, sorted (one key per distinct query, whatever
 * order gitbeaker built it in), '' when there are none, and the signal taken out.
 */
function queryOf(searchParams: Record<string, unknown> | undefined): { query: string; signal: RequestSignal | undefined } {
  let query: URLSearchParams | undefined;
  let signal: RequestSignal | undefined;
  for (const [key, value] of searchParams ? Object.entries(searchParams) : []) {
    if (key === SIGNAL && isRequestSignal(value)) {
      signal = value;
      continue;
    }
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`unsupported query parameter ${key}`);
    (query ??= new URLSearchParams()).set(decamelize(key), String(value));
  }
  if (query === undefined) return { query: '', signal };
  query.sort();
  return { query: `?${query.toString()}`, signal };
}

/**
 * Wait for a shared fetch, leaving it (and stopping it when nobody else waits) when this caller's signal fires. The
 * first waiter to see it settle removes it from the table, and lists get their pagination headers normalised.
 */
function join(table: Map<string, InFlight>, key: string, entry: InFlight, signal: RequestSignal, url: () => URL): Promise<JsonResponse> {
  entry.waiters += 1;
  return new Promise<JsonResponse>((resolve, reject) => {
    let waiting = true;
    /** false when this caller had already left. A settled or abandoned fetch leaves the table. */
    const leave = (settled: boolean): boolean => {
      if (!waiting) return false;
      waiting = false;
      signal.removeEventListener('abort', onAbort);
      entry.waiters -= 1;
      if ((settled || entry.waiters === 0) && table.get(key) === entry) table.delete(key);
      return true;
    };
    const onAbort = (): void => {
      leave(false);
      if (entry.waiters === 0) entry.stop(); // nobody else waits: stop it
      reject(new GitLabApiError('timeout', url().pathname, undefined, undefined));
    };
    if (signal.aborted) return void onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    entry.promise.then(
      (response) => {
        if (!leave(true)) return;
        // Only lists page; a single object (the job lookup on every exchange) skips the URL parsing.
        if (response.headers.link !== undefined || response.headers['x-next-page'] !== undefined) normalisePagination(url(), response.headers);
        resolve(response);
      },
      (error: unknown) => {
        if (leave(true)) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

function unsupported(): never {
  throw new TypeError('the GitLab requester is read-only');
}

/**
 * Build the `requesterFn` of one issuer's resources. Build them without a token option: the requester sends the token
 * itself, so no call awaits gitbeaker's async auth-header functions.
 * @example new Jobs({ host, camelize: false, queryTimeout: null, rateLimits: {}, requesterFn: createRequesterFn({ transport, token, requestTimeoutMs: 5000, coalesce: false }) })
 */
export function createRequesterFn(options: RequesterOptions): GitbeakerRequesterFn {
  const inFlight = new Map<string, InFlight>();
  return (resource: ResourceOptions): Requester => {
    const base = new URL(resource.url.endsWith('/') ? resource.url : `${resource.url}/`);
    const headers: Record<string, string> = { accept: 'application/json', ...resource.headers, ...(options.token ? { 'private-token': options.token } : {}) };
    const get = (endpoint: string, requestOptions?: { searchParams?: Record<string, unknown> }): Promise<JsonResponse> => {
      if (!API_ENDPOINT.test(endpoint)) throw new TypeError(`unexpected GitLab API endpoint ${JSON.stringify(endpoint)}`);
      const { query, signal } = queryOf(requestOptions?.searchParams);
      if (signal === undefined) throw new TypeError('a GitLab API call without the request signal');
      const key = `${base.pathname}${endpoint}${query}`;
      if (!options.coalesce) return options.transport.getJson({ origin: base.origin, path: key }, headers, options.requestTimeoutMs, signal);
      let entry = inFlight.get(key);
      if (entry === undefined) {
        const pending = options.transport.start({ origin: base.origin, path: key }, headers, options.requestTimeoutMs);
        entry = { promise: pending.promise, stop: pending.stop, waiters: 0 };
        inFlight.set(key, entry);
      }
      return join(inFlight, key, entry, signal, () => new URL(key, base.origin));
    };
    return { get, post: unsupported, put: unsupported, patch: unsupported, delete: unsupported } as unknown as Requester;
  };
}
