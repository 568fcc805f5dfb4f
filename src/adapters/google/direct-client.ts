/**
 * generateAccessToken as one HTTPS POST over an undici pool owned by the client (the default, `google.client: direct`):
 * `POST {base}/v1/projects/-/serviceAccounts/{email}:generateAccessToken` with `{ scope, lifetime: "<n>s", delegates }`
 * and the broker's ADC bearer (google-auth-library caches it), answered `{ accessToken, expireTime }`. The same call
 * through @google-cloud/iam-credentials costs about seven times the CPU (gax builds, validates and serialises every
 * request through protobufjs); test/google-differential.test.ts holds the two to identical results.
 * The rules: keep-alive sockets, no redirects, a bounded answer, and errors that carry Google's status and body (never
 * a request header), classified by errors.ts exactly as the SDK's are.
 */
import type { GoogleAuth } from 'google-auth-library';
import { Pool, errors } from 'undici';
import { z } from 'zod';
import { GoogleApiError } from './errors.js';
import { answeredWithoutToken, checkBaseUrl, generateAccessTokenPath, type GenerateAccessTokenRequest, type IamCredentialsClient } from './iam-client.js';

/** A token answer is a few hundred bytes, an error body a few KiB; anything near this is not IAM Credentials. */
const MAX_BODY_BYTES = 64 * 1024;

/** How long past the attempt's timeout an abandoned call may linger before undici ends it. */
const ABANDONED_GRACE_MS = 1000;

/** What the REST reference documents for GenerateAccessTokenResponse; unknown fields are ignored, as Google's clients do. */
const TokenResponse = z.object({ accessToken: z.string().min(1), expireTime: z.string().min(1) });

/** The request body: proto3 JSON, so an empty delegation chain is left out rather than sent as []. */
function requestBody(request: GenerateAccessTokenRequest): string {
  return JSON.stringify({
    scope: request.scopes,
    lifetime: `${request.lifetimeSeconds}s`,
    ...(request.delegates.length === 0 ? {} : { delegates: request.delegates.map((email) => `projects/-/serviceAccounts/${email}`) }),
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The token in a 200 answer, or the BrokerError both clients give for an answer without one. */
function tokenOf(body: unknown): { accessToken: string; expiresAt: Date } {
  const parsed = TokenResponse.safeParse(body);
  const expires = parsed.success ? Math.floor(Date.parse(parsed.data.expireTime) / 1000) : Number.NaN;
  if (!parsed.success || !(expires > 0)) throw answeredWithoutToken();
  return { accessToken: parsed.data.accessToken, expiresAt: new Date(expires * 1000) };
}

interface Answer {
  readonly status: number;
  readonly text: string;
}

/** One POST through the pool's dispatcher (no stream per response); `deadline` aborts it, `timeoutMs` bounds each wait. */
function post(pool: Pool, path: string, url: string, headers: Record<string, string>, body: string, timeoutMs: number, deadline: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let settled = false;
    let status = 0;
    let cancel: ((err: Error) => void) | undefined;
    const chunks: Buffer[] = [];
    const onAbort = (): void => {
      cancel?.(new Error('IAM Credentials call aborted'));
      finish(new GoogleApiError(url, undefined, undefined, 'ETIMEDOUT'));
    };
    const finish = (outcome: Answer | GoogleApiError): void => {
      if (settled) return;
      settled = true;
      deadline.removeEventListener('abort', onAbort);
      if (outcome instanceof GoogleApiError) reject(outcome);
      else resolve(outcome);
    };
    if (deadline.aborted) return onAbort();
    deadline.addEventListener('abort', onAbort, { once: true });
    pool.dispatch(
      { method: 'POST', path, headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
      {
        onConnect(abort) {
          cancel = abort;
          if (settled) abort(new Error('IAM Credentials call aborted'));
        },
        onHeaders(code) {
          if (code >= 200) status = code; // 1xx: informational, the answer follows
          return true;
        },
        onData(chunk) {
          chunks.push(chunk);
          return true;
        },
        onComplete() {
          finish({ status, text: (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString('utf8') });
        },
        onError(error) {
          const oversized = error instanceof errors.ResponseExceededMaxSizeError;
          const code = (error as { code?: unknown }).code;
          finish(new GoogleApiError(url, oversized ? status : undefined, undefined, oversized || typeof code !== 'string' ? undefined : code, error.message));
        },
      },
    );
  });
}

/**
 * A client whose pool lives as long as it does. undici closes sockets idle past the keep-alive timeout and unrefs idle
 * ones, so an open pool never keeps the process alive; `close` ends them at shutdown. A bare Pool.dispatch follows no
 * redirect: a 3xx is a failed call, so the bearer never reaches another host.
 */
export function createDirectIamClient(baseUrl: URL, auth: GoogleAuth): IamCredentialsClient {
  checkBaseUrl(baseUrl);
  // As Google's generated clients set them (the SDK client does the same): a key file then signs its own scoped JWT
  // as the bearer instead of first trading it at the OAuth token endpoint.
  auth.useJWTAccessWithScope = true;
  auth.defaultServicePath = baseUrl.hostname;
  const pool = new Pool(baseUrl.origin, { connections: 64, maxResponseSize: MAX_BODY_BYTES, keepAliveTimeout: 4_000 });
  return {
    async generateAccessToken(request, deadline, attemptTimeoutMs) {
      const path = generateAccessTokenPath(request.serviceAccount);
      const url = `${baseUrl.origin}${path}`;
      // ADC's headers: the cached bearer (refreshed as it nears expiry), and the quota project when one is configured.
      const adc = await auth.getRequestHeaders();
      const headers: Record<string, string> = { authorization: adc.get('authorization') ?? '', 'content-type': 'application/json' };
      const quotaProject = adc.get('x-goog-user-project');
      if (quotaProject !== null) headers['x-goog-user-project'] = quotaProject;
      // undici's own timeouts only end an attempt the retry loop has already abandoned (its timer fires first).
      const answer = await post(pool, path, url, headers, requestBody(request), attemptTimeoutMs + ABANDONED_GRACE_MS, deadline);
      const body = parseJson(answer.text);
      if (answer.status < 200 || answer.status >= 300) throw new GoogleApiError(url, answer.status, body);
      return tokenOf(body);
    },
    close: () => pool.close(),
  };
}
