/**
 * Stable, caller-visible error codes (CONTRACT.md §2). Each code has a fixed status and a fixed public title; the
 * `detail` is written for the caller and never contains secrets, the `cause` is only ever logged.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_token: 401,
  token_expired: 401,
  untrusted_issuer: 401,
  audience_mismatch: 401,
  token_replayed: 409,
  policy_denied: 403,
  approval_required: 403,
  job_not_running: 403,
  grant_not_allowed: 403,
  not_found: 404,
  permission_denied: 403,
  lock_held: 409,
  migration_dirty: 409,
  migration_conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  upstream_unavailable: 503,
  audit_unavailable: 503,
  not_ready: 503,
  internal_error: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, value);
}

export const ERROR_TITLE: Readonly<Record<ErrorCode, string>> = {
  invalid_request: 'The request is malformed',
  invalid_token: 'The ID token is not valid',
  token_expired: 'The ID token has expired or is not yet valid',
  untrusted_issuer: 'The ID token issuer is not trusted',
  audience_mismatch: 'The ID token audience is not this broker',
  token_replayed: 'The ID token was already exchanged',
  policy_denied: 'No policy rule allows this pipeline',
  approval_required: 'Required approvals are missing',
  job_not_running: 'The job is not running',
  grant_not_allowed: 'The matching rule does not allow a requested grant',
  not_found: 'Not found',
  permission_denied: 'The credentials lack a permission',
  lock_held: 'Another run holds the migration lock',
  migration_dirty: 'A migration was left half-applied',
  migration_conflict: 'The migration files disagree with the applied history',
  payload_too_large: 'The request is too large',
  rate_limited: 'Too many requests',
  upstream_unavailable: 'A service the broker depends on is unavailable',
  audit_unavailable: 'The audit log is unavailable',
  not_ready: 'The broker is not ready',
  internal_error: 'The broker failed unexpectedly',
};

/** One failed condition or requirement, for the `reasons` of a 403. */
export interface Reason {
  readonly rule: string;
  readonly name: string;
  readonly detail: string;
}

export interface BrokerErrorOptions {
  readonly cause?: unknown;
  readonly reasons?: readonly Reason[];
  /** Seconds, for 429 and 503 responses. */
  readonly retryAfter?: number;
}

/** The only error type that crosses from the broker to a caller. */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly reasons: readonly Reason[] | undefined;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, detail: string, options: BrokerErrorOptions = {}) {
    super(`${code}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.detail = detail;
    this.reasons = options.reasons;
    this.retryAfter = options.retryAfter ?? (this.status === 503 ? 5 : undefined);
  }
}

export function isBrokerError(value: unknown): value is BrokerError {
  return value instanceof BrokerError;
}

/**
 * A coded error for anything: BrokerErrors pass through; anything else is a bug in the broker (`internal_error`, 500),
 * never disguised as an outage, with the original kept as `cause` for the log.
 */
export function asBrokerError(err: unknown, detail: string): BrokerError {
  return isBrokerError(err) ? err : new BrokerError('internal_error', detail, { cause: err });
}

/** For exhaustive switches over closed unions. */
export function assertNever(value: never): never {
  throw new TypeError(`unexpected value: ${JSON.stringify(value)}`);
}
