/**
 * The one place a failed GitLab call becomes a caller-visible error: `upstream_unavailable` naming what failed, with
 * the status kept in the cause and GitLab's Retry-After passed on. Nothing here can answer "allowed" by default.
 */
import type { ZodType } from 'zod';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import { GitLabApiError } from './http-get.js';

const FAILURE_TEXT = {
  unreachable: 'unreachable',
  timeout: 'timed out',
  not_json: 'answered with a body that is not JSON',
  shape: 'answered with an unexpected document',
} as const;

/** `what` names the lookup: "GitLab job lookup", "GitLab approvals lookup". */
export function translateGitLabError(error: unknown, what: string): BrokerError {
  if (isBrokerError(error)) return error;
  if (error instanceof GitLabApiError) {
    const detail = `${what} failed: GitLab API ${error.failure === 'status' ? `answered ${error.status ?? '?'}` : FAILURE_TEXT[error.failure]}`;
    return new BrokerError('upstream_unavailable', detail, { cause: error, ...(error.retryAfterSeconds === undefined ? {} : { retryAfter: error.retryAfterSeconds }) });
  }
  return new BrokerError('upstream_unavailable', `${what} failed`, { cause: error });
}

/** Whether GitLab answered 404 (a user or membership that does not exist). */
export function isNotFound(error: unknown): boolean {
  return error instanceof GitLabApiError && error.failure === 'status' && error.status === 404;
}

/**
 * Validate a GitLab answer before any use; a wrong shape (GitLab's `null` included) is a `shape` failure naming the
 * endpoint and the first bad field, never a half-read document.
 * @example const job = parseGitLab(jobSchema, await jobs.show(...), 'projects/:id/jobs/:job_id')
 */
export function parseGitLab<T>(schema: ZodType<T>, body: unknown, endpoint: string): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  throw new GitLabApiError('shape', endpoint, undefined, undefined, { cause: { message: `${issue?.message ?? 'invalid'}${where}` } });
}
