/**
 * Consecutive DDL versions go to Spanner as one schema operation (Spanner recommends batching schema changes: each
 * operation is a new schema version and validation pass). The history stays per version: Spanner's count of committed
 * statements says which versions of a failed batch were applied, which one failed, and which never ran.
 */
import type { Migration } from './plan.js';

/** Pending versions in order, consecutive DDL files grouped (at most `maxVersions` per group), DML files alone. */
export function groupPending(pending: readonly Migration[], maxVersions: number): Migration[][] {
  const groups: Migration[][] = [];
  for (const migration of pending) {
    const last = groups.at(-1);
    const joinable = migration.kind === 'ddl' && last !== undefined && last[0]?.kind === 'ddl' && last.length < Math.max(1, maxVersions);
    if (joinable) last.push(migration);
    else groups.push([migration]);
  }
  return groups;
}

export type VersionOutcome = 'applied' | 'failed' | 'skipped';

export interface FailedStatement {
  /** Index of the failing version in the group. */
  readonly version: number;
  /** Index of the failing statement in that version. */
  readonly statement: number;
}

/** Which version and statement of a group a failure belongs to: by the committed count, else by Spanner's message. */
export function locateFailure(group: readonly Migration[], committed: number | undefined, message: string): FailedStatement | undefined {
  const statements = group.flatMap((migration, version) => migration.statements.map((text, statement) => ({ version, statement, text })));
  const found = committed !== undefined && committed < statements.length ? statements[committed]
    : statements.length === 1 ? statements[0] : statements.find((entry) => message.includes(entry.text.slice(0, 60)));
  return found ? { version: found.version, statement: found.statement } : undefined;
}

/**
 * The outcome of each version of a failed group. With a committed count from the operation, versions wholly
 * committed are applied; otherwise (the request was refused before any operation started) nothing was. The failing
 * version (the first one when it cannot be told) is failed, i.e. dirty; the others never ran.
 */
export function failedGroupOutcomes(group: readonly Migration[], committed: number | undefined, failure: FailedStatement | undefined): VersionOutcome[] {
  const failing = failure?.version ?? (committed === undefined ? 0 : undefined);
  let end = 0;
  return group.map((migration, index) => {
    end += migration.statements.length;
    if (index === failing) return 'failed';
    if (committed !== undefined && end <= committed) return 'applied';
    if (failing === undefined && committed !== undefined && end - migration.statements.length < committed) return 'failed';
    return 'skipped';
  });
}
