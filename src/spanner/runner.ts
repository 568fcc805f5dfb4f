/**
 * `spanner migrate` as named steps: connect, make sure the tables exist, take the lease, read the history, plan,
 * stop on a dirty version, apply each pending version by its kind, release the lease.
 */
import { randomUUID } from 'node:crypto';
import { assertNever, BrokerError } from '../core/errors.js';
import { dirtyAdvice, dirtyError, parseMigrations, planMigrations, type AppliedVersion, type Migration, type Plan } from '../core/spanner/plan.js';
import { ddlOperationId, type PipelineFacts } from '../core/spanner/pipeline.js';
import { mapSpannerError, spannerMessage, type Connection } from './connect.js';
import type { DatabaseName } from './tables.js';
import { readMigrationFiles } from './files.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { HistoryEntry, MigrationStore } from './store.js';

export interface RunContext {
  readonly connection: Connection;
  readonly name: DatabaseName;
  readonly store: MigrationStore;
  readonly facts: PipelineFacts;
  readonly log: (line: string) => void;
  readonly clock: () => number;
}

export interface MigrateOptions {
  readonly dir: string;
  readonly allowOutOfOrder: boolean;
  readonly dryRun: boolean;
  readonly leaseMs: number;
  readonly lockTimeoutMs: number;
  /** How often a long DDL operation prints that it is still running (GitLab kills silent jobs). */
  readonly progressEveryMs: number;
}

export interface AppliedResult {
  readonly version: number;
  readonly file: string;
  readonly kind: Migration['kind'];
  readonly statements: number;
  readonly durationMs: number;
}

export interface MigrateResult {
  readonly dryRun: boolean;
  readonly plan: Plan;
  readonly applied: readonly AppliedResult[];
  /** Milliseconds to take the lease and each renewal, for the benchmark. */
  readonly lockAcquireMs: number;
  readonly lockRenewMs: readonly number[];
}

/** The rows of the history that decide the plan: attempts at versions that still count. */
export function countingAttempts<T extends AppliedVersion & Pick<HistoryEntry, 'event'>>(history: readonly T[]): T[] {
  return history.filter((row) => row.event === 'apply' && (row.status === 'applied' || row.status === 'started' || row.status === 'failed'));
}

/** Runs `work`, logging `progress(elapsedMs)` every `everyMs` until it settles. */
/** Spanner's message without its final period, to end our own sentence with. */
const sentence = (err: unknown): string => spannerMessage(err).replace(/\.+$/, '');

export async function withProgress<T>(work: Promise<T>, everyMs: number, clock: () => number, progress: (elapsedMs: number) => void): Promise<T> {
  const started = clock();
  const timer = setInterval(() => progress(clock() - started), everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

async function readPlan(context: RunContext, options: Pick<MigrateOptions, 'dir' | 'allowOutOfOrder'>): Promise<Plan> {
  const migrations = parseMigrations(await readMigrationFiles(options.dir));
  const history = await context.store.history().catch((err: unknown) => { throw mapSpannerError(err, context.connection, context.name, 'reading the history'); });
  return planMigrations(migrations, countingAttempts(history), { allowOutOfOrder: options.allowOutOfOrder });
}

/** Names the statement of a DDL batch that failed: by Spanner's count of committed statements, or by its text. */
function failedStatement(migration: Migration, committed: number | undefined, message: string): string {
  const index = committed !== undefined && committed < migration.statements.length ? committed
    : migration.statements.length === 1 ? 0 : migration.statements.findIndex((statement) => message.includes(statement.slice(0, 60)));
  if (index < 0) return `one of its ${migration.statements.length} statements`;
  const statement = migration.statements[index] as string;
  return `statement ${index + 1} (${statement.length > 120 ? `${statement.slice(0, 119)}…` : statement})`;
}

async function applyDdl(context: RunContext, migration: Migration, options: MigrateOptions): Promise<void> {
  const id = await context.store.start(migration);
  const started = context.clock();
  let committed: number | undefined;
  try {
    const [operation] = await context.connection.database.updateSchema({
      statements: [...migration.statements],
      operationId: ddlOperationId(context.facts, migration.version, randomUUID().slice(0, 8)),
    });
    const metadata = (): { commitTimestamps?: unknown[] } | undefined => operation.metadata as { commitTimestamps?: unknown[] } | undefined;
    await withProgress(operation.promise(), options.progressEveryMs, context.clock, (elapsed) => {
      committed = metadata()?.commitTimestamps?.length ?? committed;
      context.log(`  ${migration.file}: still applying after ${Math.round(elapsed / 1000)}s (${committed ?? 0}/${migration.statements.length} statements committed)`);
    });
    await context.store.finish(id, 'applied', context.clock() - started, null);
  } catch (err) {
    committed = (err as { metadata?: { commitTimestamps?: unknown[] } })?.metadata?.commitTimestamps?.length ?? committed;
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${migration.file}`);
    const message = `${failedStatement(migration, committed, spannerMessage(err))} failed: ${sentence(err)}`;
    await context.store.finish(id, 'failed', context.clock() - started, message).catch(() => undefined);
    const done = committed === undefined ? 'Spanner applies the statements before a failing one' : `Spanner committed ${committed} of ${migration.statements.length} statements`;
    throw new BrokerError(mapped.code, `${migration.file}: ${message}. ${done}; version ${migration.version} is now dirty: ${dirtyAdvice(migration.version)}`, { cause: err });
  }
}

async function applyDml(context: RunContext, migration: Migration): Promise<void> {
  try {
    await context.store.applyDml(migration, context.clock(), context.clock);
  } catch (err) {
    const rowCounts = (err as { rowCounts?: unknown[] })?.rowCounts;
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${migration.file}`);
    const where = rowCounts ? failedStatement(migration, rowCounts.length, '') : 'a statement';
    throw new BrokerError(mapped.code, `${migration.file}: ${where} failed: ${sentence(err)}. The transaction was rolled back: nothing of it is applied`, { cause: err });
  }
}

async function applyPartitioned(context: RunContext, migration: Migration): Promise<void> {
  const id = await context.store.start(migration);
  const started = context.clock();
  let index = 0;
  try {
    for (const statement of migration.statements) {
      const rows = await context.store.partitionedUpdate(statement, `pdml v${migration.version} s${index + 1}`);
      context.log(`  ${migration.file}: statement ${index + 1}/${migration.statements.length}: at least ${rows} rows`);
      index += 1;
    }
    await context.store.finish(id, 'applied', context.clock() - started, null);
  } catch (err) {
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${migration.file}`);
    const message = `${failedStatement(migration, index, '')} failed: ${sentence(err)}`;
    await context.store.finish(id, 'failed', context.clock() - started, message).catch(() => undefined);
    throw new BrokerError(mapped.code, `${migration.file}: ${message}; statements before it ran to completion; version ${migration.version} is now dirty: ${dirtyAdvice(migration.version)}`, { cause: err });
  }
}

async function applyOne(context: RunContext, migration: Migration, options: MigrateOptions): Promise<AppliedResult> {
  const started = context.clock();
  context.log(`applying ${migration.file} (${migration.kind}, ${migration.statements.length} statement${migration.statements.length === 1 ? '' : 's'})`);
  switch (migration.kind) {
    case 'ddl':
      await applyDdl(context, migration, options);
      break;
    case 'dml':
      await applyDml(context, migration);
      break;
    case 'partitioned-dml':
      await applyPartitioned(context, migration);
      break;
    default:
      assertNever(migration.kind);
  }
  const durationMs = context.clock() - started;
  context.log(`applied ${migration.file} in ${Math.round(durationMs)} ms`);
  return { version: migration.version, file: migration.file, kind: migration.kind, statements: migration.statements.length, durationMs };
}

/** Plans (and unless dry-run, applies) the pending versions under the lease. */
export async function migrate(context: RunContext, options: MigrateOptions): Promise<MigrateResult> {
  const fail = (what: string) => (err: unknown): never => { throw mapSpannerError(err, context.connection, context.name, what); };
  if (options.dryRun) {
    const plan = await readPlan(context, options);
    return { dryRun: true, plan, applied: [], lockAcquireMs: 0, lockRenewMs: [] };
  }
  await context.store.ensureTables().catch(fail('creating the history and lock tables'));
  const lease = new LeaseKeeper(context.store, { leaseMs: options.leaseMs, lockTimeoutMs: options.lockTimeoutMs, log: context.log, clock: context.clock });
  const acquireStarted = context.clock();
  await lease.acquire().catch(fail('taking the migration lock'));
  const lockAcquireMs = context.clock() - acquireStarted;
  const applied: AppliedResult[] = [];
  try {
    const plan = await readPlan(context, options);
    const dirty = plan.dirty[0];
    if (dirty) throw dirtyError(dirty);
    if (plan.pending.length === 0) context.log(`up to date: ${plan.applied.length} versions applied`);
    for (const migration of plan.pending) {
      lease.check();
      applied.push(await applyOne(context, migration, options));
    }
    return { dryRun: false, plan, applied, lockAcquireMs, lockRenewMs: lease.renewals };
  } finally {
    await lease.release().catch((err: unknown) => context.log(`could not release the migration lock (it expires on its own): ${spannerMessage(err)}`));
  }
}
