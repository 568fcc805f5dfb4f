/**
 * `spanner migrate` as named steps: connect, make sure the tables exist, take the lease, read the history, plan,
 * stop on a dirty version, apply each pending version by its kind, release the lease.
 */
import { randomUUID } from 'node:crypto';
import { assertNever, BrokerError, isBrokerError } from '../core/errors.js';
import { dirtyAdvice, dirtyError, parseMigrations, planMigrations, type AppliedVersion, type Migration, type Plan } from '../core/spanner/plan.js';
import { failedGroupOutcomes, groupPending, locateFailure, type VersionOutcome } from '../core/spanner/batch.js';
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
  /** At most this many consecutive DDL versions per schema operation (1: one operation per file). */
  readonly ddlBatch: number;
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

/** "statement 2 (CREATE INDEX …)" for messages. */
function statementLabel(migration: Migration, index: number): string {
  const statement = migration.statements[index] ?? '';
  return `statement ${index + 1} (${statement.length > 120 ? `${statement.slice(0, 119)}…` : statement})`;
}

/** One schema operation for a group of DDL versions; their history rows are started and settled together. */
async function applyDdlGroup(context: RunContext, group: readonly Migration[], options: MigrateOptions): Promise<void> {
  const first = group[0] as Migration;
  const ids = await context.store.start(group);
  const started = context.clock();
  const total = group.reduce((sum, migration) => sum + migration.statements.length, 0);
  let committed: number | undefined;
  try {
    const [operation] = await context.connection.database.updateSchema({
      statements: group.flatMap((migration) => migration.statements),
      operationId: ddlOperationId(context.facts, first.version, randomUUID().slice(0, 8)),
    });
    const metadata = (): { commitTimestamps?: unknown[] } | undefined => operation.metadata as { commitTimestamps?: unknown[] } | undefined;
    committed = 0;
    await withProgress(operation.promise(), options.progressEveryMs, context.clock, (elapsed) => {
      committed = metadata()?.commitTimestamps?.length ?? committed;
      context.log(`  ${group.map((migration) => migration.file).join(', ')}: still applying after ${Math.round(elapsed / 1000)}s (${committed ?? 0}/${total} statements committed)`);
    });
    await context.store.finish(ids.map((id) => ({ id, status: 'applied', error: null })), context.clock() - started);
  } catch (err) {
    // An error before the operation existed means Spanner applied nothing; after, its metadata counts what it committed.
    const fromOperation = (err as { metadata?: { commitTimestamps?: unknown[] } })?.metadata?.commitTimestamps?.length;
    committed = fromOperation ?? committed;
    if (committed === undefined && group.length > 1 && !isBrokerError(err)) {
      // Refused as a whole, so nothing was applied: one operation per file finds the failing one and applies those before it.
      await context.store.finish(ids.map((id) => ({ id, status: 'skipped', error: null })), context.clock() - started);
      context.log(`Spanner refused the batch of ${group.length} files (${sentence(err)}); applying them one at a time`);
      for (const migration of group) await applyDdlGroup(context, [migration], options);
      return;
    }
    const failure = locateFailure(group, committed, spannerMessage(err));
    const outcomes = failedGroupOutcomes(group, committed, failure);
    const failing = group[failure?.version ?? outcomes.indexOf('failed')] ?? first;
    const label = failure ? statementLabel(failing, failure.statement) : `one of its ${failing.statements.length} statements`;
    const message = `${label} failed: ${sentence(err)}`;
    await context.store.finish(ids.map((id, index) => ({ id, status: outcomes[index] as VersionOutcome, error: outcomes[index] === 'skipped' ? null : message })), context.clock() - started)
      .catch(() => undefined);
    const applied = group.filter((_, index) => outcomes[index] === 'applied').map((migration) => migration.version);
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${failing.file}`);
    const done = committed === undefined ? 'Spanner applied nothing of the batch' : `Spanner committed ${committed} of the batch's ${total} statements${applied.length ? ` (versions ${applied.join(', ')} are applied)` : ''}`;
    throw new BrokerError(mapped.code, `${failing.file}: ${message}. ${done}; version ${failing.version} is now dirty: ${dirtyAdvice(failing.version)}`, { cause: err });
  }
}

async function applyDml(context: RunContext, migration: Migration): Promise<void> {
  try {
    await context.store.applyDml(migration, context.clock(), context.clock);
  } catch (err) {
    const rowCounts = (err as { rowCounts?: unknown[] })?.rowCounts;
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${migration.file}`);
    const where = rowCounts && rowCounts.length < migration.statements.length ? statementLabel(migration, rowCounts.length) : 'a statement';
    throw new BrokerError(mapped.code, `${migration.file}: ${where} failed: ${sentence(err)}. The transaction was rolled back: nothing of it is applied`, { cause: err });
  }
}

async function applyPartitioned(context: RunContext, migration: Migration): Promise<void> {
  const [id] = await context.store.start([migration]);
  const started = context.clock();
  let index = 0;
  try {
    for (const statement of migration.statements) {
      const rows = await context.store.partitionedUpdate(statement, `pdml v${migration.version} s${index + 1}`);
      context.log(`  ${migration.file}: statement ${index + 1}/${migration.statements.length}: at least ${rows} rows`);
      index += 1;
    }
    await context.store.finish([{ id: id as string, status: 'applied', error: null }], context.clock() - started);
  } catch (err) {
    const mapped = mapSpannerError(err, context.connection, context.name, `applying ${migration.file}`);
    const message = `${statementLabel(migration, index)} failed: ${sentence(err)}`;
    await context.store.finish([{ id: id as string, status: 'failed', error: message }], context.clock() - started).catch(() => undefined);
    throw new BrokerError(mapped.code, `${migration.file}: ${message}; statements before it ran to completion; version ${migration.version} is now dirty: ${dirtyAdvice(migration.version)}`, { cause: err });
  }
}

async function applyGroup(context: RunContext, group: readonly Migration[], options: MigrateOptions): Promise<AppliedResult[]> {
  const started = context.clock();
  const first = group[0] as Migration;
  const count = (migration: Migration): string => `${migration.statements.length} statement${migration.statements.length === 1 ? '' : 's'}`;
  for (const migration of group) context.log(`applying ${migration.file} (${migration.kind}, ${count(migration)})`);
  switch (first.kind) {
    case 'ddl':
      await applyDdlGroup(context, group, options);
      break;
    case 'dml':
      await applyDml(context, first);
      break;
    case 'partitioned-dml':
      await applyPartitioned(context, first);
      break;
    default:
      assertNever(first.kind);
  }
  const durationMs = context.clock() - started;
  context.log(`applied ${group.map((migration) => migration.file).join(', ')} in ${Math.round(durationMs)} ms`);
  return group.map((migration) => ({ version: migration.version, file: migration.file, kind: migration.kind, statements: migration.statements.length, durationMs: durationMs / group.length }));
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
    for (const group of groupPending(plan.pending, options.ddlBatch)) {
      lease.check();
      applied.push(...(await applyGroup(context, group, options)));
    }
    return { dryRun: false, plan, applied, lockAcquireMs, lockRenewMs: lease.renewals };
  } finally {
    await lease.release().catch((err: unknown) => context.log(`could not release the migration lock (it expires on its own): ${spannerMessage(err)}`));
  }
}
