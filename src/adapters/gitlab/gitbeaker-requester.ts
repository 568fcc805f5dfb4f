/**
 * A `requesterFn` for @gitbeaker resources, replacing @gitbeaker/rest's default. Why not the default: it cannot take
 * a per-request AbortSignal (only a per-resource queryTimeout), it retries 429 ten times in ~250 ms, follows
 * redirects (a custom PRIVATE-TOKEN header survives a cross-host redirect), returns HTML bodies as strings, and its
 * errors carry the Request object whose headers hold the API token. This one: GET only, the caller's deadline,
 * no redirects, JSON only, errors that name a path and a status and nothing else, `Link` and `x-next-page`
 * normalised so gitbeaker's pagination follows either, and identical in-flight GETs coalesced (never cached).
 */
import { hash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { getJson, GitLabApiError, type GitbeakerRequesterFn, type JsonResponse, queryString, type Requester, resolveHeaders, type ResourceOptions, targetOf, unsupported } from './http-get.js';

export { GitLabApiError, type GitLabFailure } from './http-get.js';

interface InFlight {
  readonly promise: Promise<JsonResponse>;
  readonly controller: AbortController;
  waiters: number;
}

/** Shared by every request of one broker: only in-flight GETs live here, removed as soon as they settle. */
export type InFlightTable = Map<string, InFlight>;

export interface RequesterOptions {
  /** The request's deadline (and the caller's abort). */
  readonly signal: AbortSignal;
  readonly inFlight: InFlightTable;
  /** Upper bound of a shared fetch, so one that outlives every waiter is still stopped. */
  readonly maxMs: number;
}

const NEXT_LINK = /<([^>]+)>;\s*rel="next"/;

/** Make `Link: rel="next"` and `x-next-page` imply each other; gitbeaker follows Link and reports x-next-page. */
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

/**
 * One GET through the shared GitLab transport (http-get.ts: undici's pools, kept-alive sockets), not fetch: Node 20's
 * fetch cost ~300 µs more CPU per call, and an approval-gated exchange makes several (docs/performance.md). Same rules
 * as before: no redirects, the deadline's signal, JSON only, errors that name a path and a status. The response's
 * header record is its own (built per response), so pagination is normalised in place.
 */
async function fetchJson(url: URL, headers: Record<string, string>, signal: AbortSignal, maxMs: number): Promise<JsonResponse> {
  const response = await getJson(targetOf(url), headers, maxMs, signal);
  normalisePagination(url, response.headers);
  return response;
}

/** Wait for a shared fetch, leaving it (and aborting it when nobody else waits) when this caller's deadline fires. */
function join(table: InFlightTable, key: string, entry: InFlight, signal: AbortSignal, path: string): Promise<JsonResponse> {
  entry.waiters += 1;
  return new Promise<JsonResponse>((resolve, reject) => {
    const leave = (): void => {
      signal.removeEventListener('abort', onAbort);
      entry.waiters -= 1;
    };
    const onAbort = (): void => {
      leave();
      if (entry.waiters === 0) {
        entry.controller.abort();
        if (table.get(key) === entry) table.delete(key); // a later caller must not join an aborted fetch
      }
      reject(new GitLabApiError('timeout', path, undefined, undefined));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    entry.promise.then(
      (value) => {
        leave();
        resolve(value);
      },
      (error: unknown) => {
        leave();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * The caller's signal plus our own timeout, as one signal with strong references. Not AbortSignal.any with
 * AbortSignal.timeout: Node 20 holds those sources weakly, and a collected timeout signal never fires.
 */
export function deadlineOf(parent: AbortSignal, timeoutMs: number): { deadline: AbortSignal; end: () => void } {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // every parallel call listens to it; dozens are expected, not a leak
  const onParent = (): void => controller.abort(parent.reason);
  const timer = setTimeout(() => controller.abort(new DOMException('GitLab approvals lookup deadline', 'TimeoutError')), timeoutMs);
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  return {
    deadline: controller.signal,
    end() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
      controller.abort();
    },
  };
}

/**
 * Build a gitbeaker `requesterFn` bound to one request's deadline.
 * @example new Deployments({ host, token, requesterFn: createRequester({ signal, inFlight, maxMs: 5000 }) })
 */
export function createRequester(options: RequesterOptions): GitbeakerRequesterFn {
  return (resource: ResourceOptions): Requester => {
    const get = async (endpoint: string, requestOptions?: { searchParams?: Record<string, unknown> }): Promise<JsonResponse> => {
      const url = new URL(endpoint, resource.url.endsWith('/') ? resource.url : `${resource.url}/`);
      url.search = queryString(requestOptions?.searchParams);
      const headers = await resolveHeaders(resource);
      const path = url.pathname;
      // The key separates tokens without holding one: two issuers may share an API host.
      const credential = hash('sha256', JSON.stringify(headers), 'base64url');
      const key = `${credential} ${url.href}`;
      const table = options.inFlight;
      let entry = table.get(key);
      if (!entry) {
        const controller = new AbortController();
        // A plain timer, not AbortSignal.timeout: Node 20 can collect an unreferenced timeout signal before it fires.
        const timer = setTimeout(() => controller.abort(), options.maxMs);
        const created: InFlight = { promise: fetchJson(url, headers, controller.signal, options.maxMs), controller, waiters: 0 };
        const forget = (): void => {
          clearTimeout(timer);
          if (table.get(key) === created) table.delete(key);
        };
        created.promise.then(forget, forget); // also keeps an abandoned fetch's rejection from going unhandled
        table.set(key, created);
        entry = created;
      }
      return join(table, key, entry, options.signal, path);
    };
    return { get, post: unsupported, put: unsupported, patch: unsupported, delete: unsupported } as unknown as Requester;
  };
}
