/**
 * GitLab API GETs over undici's connection pools (kept-alive sockets), for every GitLab call the broker makes, under
 * the one requester (gitbeaker-requester.ts) that the GitLab client (client.ts) gives its gitbeaker resources. Not fetch, which puts WHATWG streams on top of the
 * same client (~300 µs more CPU per call), and not node:http, whose request and response objects cost ~70 µs more CPU
 * per job lookup under load than undici's dispatcher (docs/performance.md).
 * The rules: GET only, a deadline, no redirects (a 3xx is refused as unreachable, so a PRIVATE-TOKEN header never
 * reaches another host), JSON only, a bounded body, and errors that name a path and a status and nothing else.
 */
import { Pool, errors } from 'undici';
import type { RequestSignal } from '../../ports.js';

/** `shape`: a JSON answer that is not the document asked for (GitLab's `null` included). */
export type GitLabFailure = 'unreachable' | 'timeout' | 'status' | 'not_json' | 'shape';

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

/** A GET under way: its answer, and `stop` to end it early (it then fails as `timeout`). */
export interface PendingGet {
  readonly promise: Promise<JsonResponse>;
  stop(): void;
}

/**
 * GET `target` as JSON through undici's dispatcher: no stream per response, the chunks are kept and parsed once at the
 * end. `timeoutMs` bounds the wait for the headers and each gap in the body, so an abandoned call still ends;
 * `signal` (the request's deadline) or `stop` ends it earlier. A redirect is refused, never followed: a PRIVATE-TOKEN
 * header must not reach another host.
 */
function startGet(pool: Pool, target: Target, headers: Record<string, string>, timeoutMs: number, signal: RequestSignal | undefined): PendingGet {
  const query = target.path.indexOf('?');
  const path = query < 0 ? target.path : target.path.slice(0, query);
  let stop: () => void = () => {};
  const promise = new Promise<JsonResponse>((resolve, reject) => {
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
    stop = onAbort;
    if (signal?.aborted) {
      settle(new GitLabApiError('timeout', path, undefined, undefined));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    pool.dispatch(
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
  return { promise, stop: () => stop() };
}

/** GETs over one connection pool per GitLab origin, owned by one GitLab client and closed with it. */
export interface GitLabTransport {
  getJson(target: Target, headers: Record<string, string>, timeoutMs: number, signal?: RequestSignal): Promise<JsonResponse>;
  /** A GET that callers sharing it stop themselves (the requester's coalescing): no signal of its own. */
  start(target: Target, headers: Record<string, string>, timeoutMs: number): PendingGet;
  /** Close every pool; calls still running fail as unreachable. */
  close(): Promise<void>;
}

/**
 * A transport whose pools live as long as it does. undici closes sockets idle past the keep-alive timeout and unrefs
 * idle ones, so an open pool never keeps the process alive; `close` ends them at shutdown. Redirects are never
 * followed: a bare Pool.dispatch has no redirect handler, and a 3xx is refused above.
 * @example const transport = createTransport(); await transport.getJson(targetOf(url), headers, 5000, signal); await transport.close();
 */
export function createTransport(): GitLabTransport {
  const pools = new Map<string, Pool>();
  let closed = false;
  const begin = (target: Target, headers: Record<string, string>, timeoutMs: number, signal: RequestSignal | undefined): PendingGet => {
    if (closed) {
      const refused = Promise.reject(new GitLabApiError('unreachable', target.path.split('?')[0] ?? '', undefined, undefined, { cause: { message: 'the GitLab client is closed' } }));
      return { promise: refused, stop: () => {} };
    }
    let pool = pools.get(target.origin);
    if (pool === undefined) {
      pool = new Pool(target.origin, { connections: 64, maxResponseSize: MAX_BODY_BYTES, keepAliveTimeout: 4_000 });
      pools.set(target.origin, pool);
    }
    return startGet(pool, target, headers, timeoutMs, signal);
  };
  return {
    getJson: (target, headers, timeoutMs, signal) => begin(target, headers, timeoutMs, signal).promise,
    start: (target, headers, timeoutMs) => begin(target, headers, timeoutMs, undefined),
    async close() {
      closed = true;
      const open = [...pools.values()];
      pools.clear();
      await Promise.all(open.map((pool) => pool.destroy()));
    },
  };
}
