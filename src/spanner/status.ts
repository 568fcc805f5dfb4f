/** `spanner status`: what is applied (and by whom), what is pending, what is dirty, and who holds the lock. */
import { isBrokerError } from '../core/errors.js';
import { dirtyAdvice, parseMigrations, planMigrations, type Migration } from '../core/spanner/plan.js';
import { mapSpannerError } from './connect.js';
import { readMigrationFiles } from './files.js';
import { countingAttempts, type RunContext } from './runner.js';

export interface StatusReport {
  readonly database: string;
  readonly historyTable: string;
  readonly applied: readonly Record<string, unknown>[];
  /** null when no --dir was given. */
  readonly pending: readonly Record<string, unknown>[] | null;
  readonly dirty: readonly Record<string, unknown>[];
  readonly lock: Record<string, unknown> | null;
  readonly events: readonly Record<string, unknown>[];
  /** Why the files cannot be applied as they are (a changed applied file, a gap, …). */
  readonly problems: readonly string[];
}

const pendingEntry = (migration: Migration): Record<string, unknown> => ({ version: migration.version, file: migration.file, kind: migration.kind, statementCount: migration.statements.length });

export async function status(context: RunContext, options: { dir: string | undefined; allowOutOfOrder: boolean }): Promise<StatusReport> {
  const { store } = context;
  const [history, lease] = await Promise.all([store.history(), store.lease()])
    .catch((err: unknown) => { throw mapSpannerError(err, context.connection, context.name, 'reading the history and lock'); });
  const attempts = countingAttempts(history);
  const problems: string[] = [];
  let pending: Record<string, unknown>[] | null = null;
  if (options.dir !== undefined) {
    const migrations = parseMigrations(await readMigrationFiles(options.dir));
    const appliedVersions = new Set(attempts.filter((row) => row.status === 'applied').map((row) => row.version));
    pending = migrations.filter((migration) => !appliedVersions.has(migration.version)).map(pendingEntry);
    try {
      planMigrations(migrations, attempts, { allowOutOfOrder: options.allowOutOfOrder });
    } catch (err) {
      if (!isBrokerError(err)) throw err;
      problems.push(err.detail);
    }
  }
  const who = (row: (typeof history)[number]): Record<string, unknown> => ({
    projectPath: row.projectPath, pipelineId: row.pipelineId, jobId: row.jobId, commitSha: row.commitSha, ref: row.ref, user: row.user,
    environment: row.environment, rule: row.rule, approvers: row.approvers,
  });
  return {
    database: context.name.path,
    historyTable: store.tables.history,
    applied: history.filter((row) => row.event === 'apply' && row.status === 'applied').map((row) => ({
      version: row.version, file: row.file, kind: row.kind, checksum: row.checksum, statementCount: row.statementCount,
      startedAt: row.startedAt, finishedAt: row.finishedAt, durationMs: row.durationMs, ...who(row),
    })),
    pending,
    dirty: attempts.filter((row) => row.status !== 'applied').map((row) => ({
      version: row.version, file: row.file, status: row.status, error: row.error, startedAt: row.startedAt, ...who(row),
      resolve: dirtyAdvice(row.version),
    })),
    lock: lease.lease ? {
      owner: lease.lease.owner, acquiredAt: lease.lease.acquiredAt.toISOString(), renewedAt: lease.lease.renewedAt.toISOString(),
      expiresAt: lease.lease.expiresAt.toISOString(), expired: lease.lease.expiresAt.getTime() <= lease.now.getTime(),
    } : null,
    events: history.filter((row) => row.event !== 'apply').map((row) => ({ event: row.event, version: row.version || null, at: row.startedAt, detail: row.detail, ...who(row) })),
    problems,
  };
}
