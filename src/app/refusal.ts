/**
 * What a refusal repeats of the request, kept short and printable: a refusal (problem+json) and its audit record stay
 * under 4 KiB whatever the caller sent — huge or many keys, long claims, control characters.
 */
import type { GitLabPrincipal } from '../core/claims.js';
import { echo } from '../core/echo.js';
import type { BrokerError, Reason } from '../core/errors.js';
import type { TrustedIssuer } from '../ports.js';
import { auditSubject } from './authorize.js';

/** A refusal's problem+json body and its audit line each stay under this. */
export const MAX_REFUSAL_BYTES = 4096;
/** An audit record's own fields: the sink adds a timestamp, a level and a message to each line. */
export const MAX_AUDIT_RECORD_BYTES = MAX_REFUSAL_BYTES - 512;

const MAX_DETAIL_CHARS = 240;
const MAX_CAUSE_CHARS = 200;
const MAX_REASONS = 6;
const MAX_REASON_DETAIL_CHARS = 160;
/** When a record is still too large, every string in it is cut to this. */
const SHRUNK_CHARS = 24;

/** The audit fields about a verified caller. Claims are signed by GitLab but chosen by users (paths, refs,
 * environments), so each is echoed: bounded and printable. */
export function auditCaller(issuer: TrustedIssuer, principal: GitLabPrincipal): Record<string, unknown> {
  const fields = auditSubject(issuer, principal);
  for (const key in fields) {
    const value = fields[key];
    if (typeof value === 'string') fields[key] = echo(value);
  }
  return fields;
}

export function boundedDetail(detail: string): string {
  return echo(detail, MAX_DETAIL_CHARS);
}

/** The first few reasons, each field bounded; undefined when there are none. */
export function boundedReasons(reasons: readonly Reason[] | undefined): Reason[] | undefined {
  if (reasons === undefined || reasons.length === 0) return undefined;
  return reasons.slice(0, MAX_REASONS).map((reason) => ({ rule: echo(reason.rule), name: echo(reason.name), detail: echo(reason.detail, MAX_REASON_DETAIL_CHARS) }));
}

/** A short description of an upstream cause for the audit log (never the token, which no error carries). */
export function causeText(err: BrokerError): string | undefined {
  const cause = err.cause;
  if (cause === undefined) return undefined;
  return echo(cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause), MAX_CAUSE_CHARS);
}

/** The audit fields of a refusal: its code and bounded detail, reasons and cause. */
export function refusalFields(failure: BrokerError): { code: BrokerError['code']; detail: string; reasons: Reason[] | undefined; cause: string | undefined } {
  return { code: failure.code, detail: boundedDetail(failure.detail), reasons: boundedReasons(failure.reasons), cause: causeText(failure) };
}

function byteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/**
 * `record` if its JSON fits in `maxBytes`, else a smaller copy: one reason kept, then every string cut short, then
 * only the identifying fields. Each field is already bounded, so this only acts on wide (multi-byte) text.
 */
export function fitRecord<T extends Record<string, unknown>>(record: T, maxBytes: number = MAX_AUDIT_RECORD_BYTES): T {
  if (byteLength(record) <= maxBytes) return record;
  const reduced: Record<string, unknown> = { ...record };
  const reasons = reduced.reasons;
  if (Array.isArray(reasons) && reasons.length > 1) {
    reduced.reasons = reasons.slice(0, 1);
    reduced.reasonsOmitted = reasons.length - 1;
    if (byteLength(reduced) <= maxBytes) return reduced as T;
  }
  for (const key of Object.keys(reduced)) {
    const value = reduced[key];
    if (typeof value === 'string') reduced[key] = echo(value, SHRUNK_CHARS);
    else if (typeof value === 'object' && value !== null) reduced[key] = echo(JSON.stringify(value), SHRUNK_CHARS * 2);
  }
  if (byteLength(reduced) <= maxBytes) return reduced as T;
  const kept: Record<string, unknown> = { truncated: true };
  for (const key of ['event', 'phase', 'requestId', 'outcome', 'code', 'tokenSha256', 'issuer', 'project_id', 'rule']) {
    if (reduced[key] !== undefined) kept[key] = reduced[key];
  }
  return kept as T;
}
