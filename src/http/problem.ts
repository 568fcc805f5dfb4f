/** RFC 9457 problem+json responses with the broker's stable codes. */
import type { ServerResponse } from 'node:http';
import { boundedDetail, boundedReasons, MAX_REFUSAL_BYTES } from '../app/refusal.js';
import { BrokerError, ERROR_TITLE } from '../core/errors.js';

export const PROBLEM_TYPE_BASE = 'https://gitlab-oidc-broker.dev/errors/';

export interface ProblemResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * The problem+json response for a coded error: same shape for express routes and the raw exchange routes. What it
 * repeats of the request is short and printable, and the body stays under 4 KiB (reasons are dropped from the end
 * until it fits).
 */
export function problemResponse(err: BrokerError, requestId: string): ProblemResponse {
  const body: Record<string, unknown> = {
    type: `${PROBLEM_TYPE_BASE}${err.code}`,
    title: ERROR_TITLE[err.code],
    status: err.status,
    code: err.code,
    detail: boundedDetail(err.detail),
    requestId,
  };
  const reasons = boundedReasons(err.reasons);
  let text = JSON.stringify(body);
  for (let count = reasons?.length ?? 0; reasons !== undefined && count > 0; count--) {
    const withReasons = JSON.stringify({ ...body, reasons: reasons.slice(0, count) });
    if (Buffer.byteLength(withReasons) <= MAX_REFUSAL_BYTES) {
      text = withReasons;
      break;
    }
  }
  const headers: Record<string, string> = { 'Content-Type': 'application/problem+json; charset=utf-8', 'X-Broker-Code': err.code };
  if (err.retryAfter !== undefined) headers['Retry-After'] = String(err.retryAfter);
  if (err.status === 401) headers['WWW-Authenticate'] = `Bearer error="invalid_token", error_description="${err.code}"`;
  return { status: err.status, headers, body: text };
}

export function sendProblem(res: ServerResponse, err: BrokerError, requestId: string): void {
  const problem = problemResponse(err, requestId);
  res.writeHead(problem.status, { ...problem.headers, 'Content-Length': Buffer.byteLength(problem.body) });
  res.end(problem.body);
}

/** Express errors → coded broker errors; a caller's mistake is never a 500, a bug always is (`internal_error`). */
export function toBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const typed = err as { status?: unknown } | null;
  const status = typeof typed?.status === 'number' ? typed.status : 0;
  if (status === 413) return new BrokerError('payload_too_large', 'the body is larger than 64 KiB', { cause: err });
  if (status >= 400 && status < 500) return new BrokerError('invalid_request', 'the request body could not be read', { cause: err });
  return new BrokerError('internal_error', 'the broker could not complete the request', { cause: err });
}
