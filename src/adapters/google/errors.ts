/**
 * What a failed Google call means, and what the operator should do about it. Google answers through our own
 * GoogleApiError (the direct client), gaxios errors (HTTP status plus Google's `{ error: { code, message, status } }`
 * body), gax errors (gRPC codes) or socket errors.
 * The SDK error itself is never kept as a `cause`: it holds the whole request config (gaxios redacts the Authorization
 * header by default, but that is a library setting, not ours); a summary of status, URL and Google's message is kept.
 */

export type FailureKind = 'denied' | 'not_found' | 'unauthenticated' | 'invalid' | 'transient' | 'unknown';

export interface GoogleFailure {
  readonly kind: FailureKind;
  /** HTTP status, when Google (or a proxy) answered. */
  readonly status: number | undefined;
  /** Google's `error.status` (e.g. PERMISSION_DENIED) or a socket error code. */
  readonly reason: string | undefined;
  /** Google's `error.message`, cut short; never a credential. */
  readonly message: string;
  /** The URL that failed, without query. */
  readonly url: string | undefined;
}

/**
 * A failed call of ours to a Google REST API: Google's answer (HTTP status and body, parsed when it is JSON) or the
 * socket's error code. Holds the URL and nothing of the request, so logging it cannot leak the bearer.
 */
export class GoogleApiError extends Error {
  override readonly name = 'GoogleApiError';
  constructor(
    readonly url: string,
    readonly status: number | undefined,
    readonly body: unknown,
    readonly code?: string,
    detail?: string,
  ) {
    super(`${url}: ${status === undefined ? (code ?? 'no answer') : `HTTP ${status}`}${detail === undefined ? '' : ` (${detail})`}`);
  }
}

// gRPC codes gax uses (google.rpc.Code).
const GRPC_KIND: Readonly<Record<number, FailureKind>> = { 2: 'transient', 3: 'invalid', 4: 'transient', 5: 'not_found', 7: 'denied', 8: 'transient', 13: 'transient', 14: 'transient', 16: 'unauthenticated' };
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

/** A connection that failed or timed out: worth another attempt. */
function isSocketCode(code: string): boolean {
  return SOCKET_CODES.has(code) || code.startsWith('UND_ERR');
}

function httpKind(status: number): FailureKind {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'denied';
  if (status === 404) return 'not_found';
  if (status === 408 || status === 429 || status >= 500) return 'transient';
  if (status >= 400) return 'invalid';
  return 'unknown';
}

/** Google's error body, when `body` (parsed, or the text of an error message) is one. */
function googleBody(body: unknown): { status?: string; message?: string } | undefined {
  try {
    const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { error?: { status?: unknown; message?: unknown } } | null;
    const error = parsed?.error;
    if (error === undefined || error === null || typeof error !== 'object') return undefined;
    return { ...(typeof error.status === 'string' ? { status: error.status } : {}), ...(typeof error.message === 'string' ? { message: error.message } : {}) };
  } catch {
    return undefined;
  }
}

function shorten(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Classify anything a Google call threw. */
export function describeFailure(error: unknown): GoogleFailure {
  if (error instanceof GoogleApiError) {
    if (error.status !== undefined) {
      const body = googleBody(error.body);
      return { kind: httpKind(error.status), status: error.status, reason: body?.status, message: shorten(body?.message ?? `HTTP ${error.status}`), url: error.url };
    }
    const transient = error.code !== undefined && isSocketCode(error.code);
    return { kind: transient ? 'transient' : 'unknown', status: undefined, reason: error.code, message: error.code ?? shorten(error.message), url: error.url };
  }
  const e = (error ?? {}) as { status?: unknown; code?: unknown; message?: unknown; response?: { status?: unknown; data?: unknown }; config?: { url?: unknown } };
  const rawUrl = e.config?.url;
  const url = rawUrl === undefined ? undefined : String(rawUrl).split('?')[0];
  const text = typeof e.message === 'string' ? e.message : String(error);
  const status = typeof e.status === 'number' ? e.status : typeof e.response?.status === 'number' ? e.response.status : undefined;
  if (status !== undefined) {
    const body = googleBody(e.response?.data) ?? googleBody(text);
    return { kind: httpKind(status), status, reason: body?.status, message: shorten(body?.message ?? `HTTP ${status}`), url };
  }
  if (typeof e.code === 'string' && isSocketCode(e.code)) {
    return { kind: 'transient', status: undefined, reason: e.code, message: e.code, url };
  }
  if (typeof e.code === 'number') {
    return { kind: GRPC_KIND[e.code] ?? 'unknown', status: undefined, reason: `gRPC ${e.code}`, message: shorten(text), url };
  }
  return { kind: 'unknown', status: undefined, reason: undefined, message: shorten(text), url };
}

/** What a failure looked like, for a detail line: "HTTP 403 PERMISSION_DENIED" or "ECONNREFUSED". */
export function failureSummary(failure: GoogleFailure): string {
  if (failure.status !== undefined) return `HTTP ${failure.status}${failure.reason === undefined ? '' : ` ${failure.reason}`}`;
  return failure.reason ?? failure.message;
}

/** A loggable stand-in for the SDK error: what failed and where, without the request's headers. */
export function sanitizedCause(failure: GoogleFailure): Error {
  return new Error(`${failureSummary(failure)}${failure.url === undefined ? '' : ` from ${failure.url}`}: ${failure.message}`);
}

/**
 * The IAM member string for an identity: `serviceAccount:<email>` for an email, `principal://…` and other members as
 * they are, and a placeholder for the operator to fill in when the identity is not known.
 */
export function iamMember(identity: string): string {
  if (identity.includes('@') && !identity.includes(':')) return `serviceAccount:${identity}`;
  return identity.includes(':') ? identity : "'<the broker's principal>'";
}

/** The gcloud command that lets `member` mint access tokens for `serviceAccount`. */
export function tokenCreatorCommand(serviceAccount: string, member: string): string {
  return `gcloud iam service-accounts add-iam-policy-binding ${serviceAccount} --member=${member} --role=roles/iam.serviceAccountTokenCreator`;
}

/**
 * The bindings a mint needs, hop by hop: the broker on the first delegate (or the target), each delegate on the next.
 * @example tokenCreatorChain('broker@p.iam.gserviceaccount.com', [], 'sa@q.iam.gserviceaccount.com')
 *   // → 'roles/iam.serviceAccountTokenCreator on sa@q.iam.gserviceaccount.com for broker@p.iam.gserviceaccount.com'
 */
export function tokenCreatorChain(brokerIdentity: string, delegates: readonly string[], serviceAccount: string): string {
  const hops = [...delegates, serviceAccount];
  const callers = [brokerIdentity, ...delegates];
  return hops.map((hop, i) => `roles/iam.serviceAccountTokenCreator on ${hop} for ${callers[i] as string}`).join(', then ');
}
