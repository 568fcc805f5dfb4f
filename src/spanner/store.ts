/**
 * The history table and the lease row, read and written through @google-cloud/spanner. Every read-write transaction
 * goes through `runTransactionAsync` (which retries on ABORTED as the client intends) and every request carries a
 * request tag naming the pipeline and job. Times are Spanner's CURRENT_TIMESTAMP(), never the runner's clock.
 */
import { randomUUID } from 'node:crypto';
import { Spanner, type Database, type Transaction } from '@google-cloud/spanner';
import { BrokerError } from '../core/errors.js';
import { decideAcquire, type AcquireDecision, type LeaseRow } from '../core/spanner/lease.js';
import type { AppliedVersion, Migration } from '../core/spanner/plan.js';
import { ownerName, requestTag, type PipelineFacts } from '../core/spanner/pipeline.js';
import { createTablesDdl, LOCK_NAME, type TableNames } from './tables.js';

type Row = Record<string, unknown>;

/** One history row as status shows it. */
export interface HistoryEntry extends AppliedVersion {
  readonly id: string;
  readonly event: string;
  readonly kind: string;
  readonly statementCount: number;
  readonly finishedAt: string;
  readonly durationMs: number | null;
  readonly commitSha: string;
  readonly ref: string;
  readonly user: string;
  readonly environment: string;
  readonly rule: string;
  readonly approvers: readonly string[];
  readonly detail: string;
}

const iso = (value: unknown): string => (value instanceof Date ? value.toISOString() : value === null || value === undefined ? '' : String(value));
const text = (value: unknown): string => (value === null || value === undefined ? '' : String(value));

function toEntry(row: Row): HistoryEntry {
  return {
    id: text(row.id), event: text(row.event), version: Number(row.version ?? 0), file: text(row.file), checksum: text(row.checksum),
    kind: text(row.kind), status: text(row.status) as AppliedVersion['status'], statementCount: Number(row.statement_count ?? 0),
    startedAt: iso(row.started_at), finishedAt: iso(row.finished_at), durationMs: row.duration_ms === null || row.duration_ms === undefined ? null : Number(row.duration_ms),
    error: text(row.error), detail: text(row.detail), projectPath: text(row.project_path), pipelineId: text(row.pipeline_id), jobId: text(row.job_id),
    commitSha: text(row.commit_sha), ref: text(row.ref), user: text(row.user_login), environment: text(row.environment), rule: text(row.rule),
    approvers: Array.isArray(row.approvers) ? row.approvers.map(text) : [],
  };
}

function toLease(row: Row | undefined): LeaseRow | undefined {
  if (!row) return undefined;
  return { owner: text(row.owner), token: text(row.token), acquiredAt: row.acquired_at as Date, renewedAt: row.renewed_at as Date, expiresAt: row.expires_at as Date };
}

const WHO_COLUMNS = 'project_path, project_id, pipeline_id, job_id, commit_sha, ref, user_login, environment, rule, request_id, approvers';
const WHO_VALUES = '@project_path, @project_id, @pipeline_id, @job_id, @commit_sha, @ref, @user_login, @environment, @rule, @request_id, @approvers';

export class MigrationStore {
  constructor(
    private readonly database: Database,
    readonly tables: TableNames,
    private readonly facts: PipelineFacts,
  ) {}

  private who(): Row {
    const facts = this.facts;
    return {
      project_path: facts.projectPath, project_id: facts.projectId, pipeline_id: facts.pipelineId, job_id: facts.jobId, commit_sha: facts.commitSha,
      ref: facts.ref, user_login: facts.user, environment: facts.environment, rule: facts.rule, request_id: facts.requestId, approvers: [...facts.approvers],
    };
  }

  private async query(sql: string, params: Row, what: string): Promise<Row[]> {
    const [rows] = await this.database.run({ sql, params, json: true, requestOptions: { requestTag: requestTag(this.facts, what) } });
    return rows as Row[];
  }

  private transaction<T>(what: string, body: (tx: Transaction, tag: string) => Promise<T>): Promise<T> {
    const tag = requestTag(this.facts, what);
    return this.database.runTransactionAsync({ requestOptions: { transactionTag: tag } }, async (tx) => {
      const result = await body(tx, tag);
      await tx.commit();
      return result;
    });
  }

  /** Which of the two tables exist. */
  async existingTables(): Promise<{ history: boolean; lock: boolean }> {
    const rows = await this.query("SELECT table_name FROM information_schema.tables WHERE table_schema = '' AND table_name IN UNNEST(@names)",
      { names: [this.tables.history, this.tables.lock] }, 'tables');
    const names = new Set(rows.map((row) => text(row.table_name)));
    return { history: names.has(this.tables.history), lock: names.has(this.tables.lock) };
  }

  /** Creates the tables on a first run; a concurrent first run creating them too is fine. */
  async ensureTables(): Promise<void> {
    const existing = await this.existingTables();
    const [history, lock] = createTablesDdl(this.tables);
    const missing = [existing.history ? undefined : history, existing.lock ? undefined : lock].filter((ddl): ddl is string => ddl !== undefined);
    if (missing.length === 0) return;
    try {
      const [operation] = await this.database.updateSchema(missing);
      await operation.promise();
    } catch (err) {
      const after = await this.existingTables();
      if (!(after.history && after.lock)) throw err;
    }
  }

  /** Every history row, oldest first ([] before the first run). */
  async history(): Promise<HistoryEntry[]> {
    if (!(await this.existingTables()).history) return [];
    const rows = await this.query(`SELECT * FROM ${this.tables.history} ORDER BY started_at, version`, {}, 'history');
    return rows.map(toEntry);
  }

  /** The lease row (if any) and Spanner's current time. */
  async lease(): Promise<{ lease: LeaseRow | undefined; now: Date }> {
    if (!(await this.existingTables()).lock) return { lease: undefined, now: new Date() };
    const rows = await this.query(`SELECT CURRENT_TIMESTAMP() AS now, l.* FROM (SELECT 1) LEFT JOIN ${this.tables.lock} l ON l.name = @name`, { name: LOCK_NAME }, 'lease');
    const row = rows[0] ?? {};
    return { lease: row.token ? toLease(row) : undefined, now: row.now as Date };
  }

  /** One attempt to take the lease: takes it when free or expired, otherwise reports the holder. */
  async tryAcquire(token: string, leaseMs: number): Promise<AcquireDecision & { now: Date }> {
    return this.transaction('lock acquire', async (tx, tag) => {
      const [rows] = await tx.run({ sql: `SELECT CURRENT_TIMESTAMP() AS now, l.* FROM (SELECT 1) LEFT JOIN ${this.tables.lock} l ON l.name = @name`, params: { name: LOCK_NAME }, json: true, requestOptions: { requestTag: tag } });
      const row = (rows[0] ?? {}) as Row;
      const now = row.now as Date;
      const decision = decideAcquire(row.token ? toLease(row) : undefined, now);
      if (decision.action === 'take') {
        await tx.runUpdate({
          sql: decision.expired
            ? `UPDATE ${this.tables.lock} SET owner = @owner, token = @token, acquired_at = CURRENT_TIMESTAMP(), renewed_at = CURRENT_TIMESTAMP(), expires_at = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @ms MILLISECOND) WHERE name = @name`
            : `INSERT INTO ${this.tables.lock} (name, owner, token, acquired_at, renewed_at, expires_at) VALUES (@name, @owner, @token, CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP(), TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @ms MILLISECOND))`,
          params: { name: LOCK_NAME, owner: ownerName(this.facts), token, ms: leaseMs },
          requestOptions: { requestTag: tag },
        });
      }
      return { ...decision, now };
    });
  }

  /** Extends our lease; false when it is no longer ours (someone took it over after it expired, or unlocked it). */
  async renew(token: string, leaseMs: number): Promise<boolean> {
    return this.transaction('lock renew', async (tx, tag) => {
      const [count] = await tx.runUpdate({
        sql: `UPDATE ${this.tables.lock} SET renewed_at = CURRENT_TIMESTAMP(), expires_at = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @ms MILLISECOND) WHERE name = @name AND token = @token`,
        params: { name: LOCK_NAME, token, ms: leaseMs }, requestOptions: { requestTag: tag },
      });
      return count === 1;
    });
  }

  async release(token: string): Promise<void> {
    await this.transaction('lock release', async (tx, tag) => {
      await tx.runUpdate({ sql: `DELETE FROM ${this.tables.lock} WHERE name = @name AND token = @token`, params: { name: LOCK_NAME, token }, requestOptions: { requestTag: tag } });
    });
  }

  /** Removes whatever lease exists and records who removed whose lease; returns the removed lease. */
  async forceUnlock(): Promise<LeaseRow | undefined> {
    return this.transaction('unlock', async (tx, tag) => {
      const [rows] = await tx.run({ sql: `SELECT * FROM ${this.tables.lock} WHERE name = @name`, params: { name: LOCK_NAME }, json: true, requestOptions: { requestTag: tag } });
      const lease = toLease(rows[0] as Row | undefined);
      await tx.runUpdate({ sql: `DELETE FROM ${this.tables.lock} WHERE name = @name`, params: { name: LOCK_NAME }, requestOptions: { requestTag: tag } });
      await this.insertEvent(tx, tag, 'unlock', null, lease ? `removed the lease of ${lease.owner} (expiring ${lease.expiresAt.toISOString()})` : 'no lease was held');
      return lease;
    });
  }

  private async insertEvent(tx: Transaction, tag: string, event: string, version: number | null, detail: string): Promise<void> {
    await tx.runUpdate({
      sql: `INSERT INTO ${this.tables.history} (id, event, version, status, started_at, finished_at, detail, ${WHO_COLUMNS}) VALUES (@id, @event, @version, 'done', CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP(), @detail, ${WHO_VALUES})`,
      params: { id: randomUUID(), event, version, detail, ...this.who() },
      types: { version: 'int64', approvers: { type: 'array', child: 'string' } },
      requestOptions: { requestTag: tag },
    });
  }

  private startParams(id: string, migration: Migration, status: string): Row {
    return {
      id, version: migration.version, description: migration.description, file: migration.file, checksum: migration.checksum, kind: migration.kind,
      status, statement_count: migration.statements.length, ...this.who(),
    };
  }

  private attemptStatement(params: Row): { sql: string; params: Row; types: Record<string, unknown> } {
    return {
      sql: `INSERT INTO ${this.tables.history} (id, event, version, description, file, checksum, kind, status, statement_count, started_at, ${WHO_COLUMNS})
            VALUES (@id, 'apply', @version, @description, @file, @checksum, @kind, @status, @statement_count, CURRENT_TIMESTAMP(), ${WHO_VALUES})`,
      params, types: { approvers: { type: 'array', child: 'string' } },
    };
  }

  /**
   * Records that versions started, as mutations in one transaction (one commit however many versions); each row stays
   * "started" (dirty) until {@link finish} says otherwise. Times are the commit timestamp.
   */
  async start(migrations: readonly Migration[]): Promise<string[]> {
    const ids = migrations.map(() => randomUUID());
    await this.transaction(`start v${migrations[0]?.version ?? 0}`, async (tx) => {
      tx.insert(this.tables.history, migrations.map((migration, index) => ({
        ...this.startParams(ids[index] as string, migration, 'started'), event: 'apply', started_at: Spanner.COMMIT_TIMESTAMP,
      })));
    });
    return ids;
  }

  /** Settles started rows in one commit: applied, failed (dirty), or skipped (never ran; the row no longer counts). */
  async finish(outcomes: readonly { id: string; status: 'applied' | 'failed' | 'skipped'; error: string | null }[], durationMs: number): Promise<void> {
    await this.transaction('finish', async (tx) => {
      tx.update(this.tables.history, outcomes.map((outcome) => ({
        id: outcome.id, status: outcome.status, finished_at: Spanner.COMMIT_TIMESTAMP, duration_ms: Math.round(durationMs), error: outcome.error,
      })));
    });
  }

  /** A DML file and its history row in one transaction: either both are committed or neither. */
  async applyDml(migration: Migration, startedMs: number, clock: () => number): Promise<void> {
    const id = randomUUID();
    await this.transaction(`dml v${migration.version}`, async (tx, tag) => {
      await tx.batchUpdate([...migration.statements], { requestOptions: { requestTag: tag } });
      await tx.runUpdate({ ...this.attemptStatement(this.startParams(id, migration, 'applied')), requestOptions: { requestTag: tag } } as never);
      await tx.runUpdate({
        sql: `UPDATE ${this.tables.history} SET finished_at = CURRENT_TIMESTAMP(), duration_ms = @duration WHERE id = @id`,
        params: { id, duration: Math.round(clock() - startedMs) }, requestOptions: { requestTag: tag },
      });
    });
  }

  async partitionedUpdate(statement: string, what: string): Promise<number> {
    const [count] = await this.database.runPartitionedUpdate({ sql: statement, requestOptions: { requestTag: requestTag(this.facts, what) } });
    return count;
  }

  /**
   * Marks a dirty version as rolled back (it runs again next time) or applied (optionally with the file's current
   * checksum), and records who did it. Refused while a live lease exists: the version may still be running.
   */
  async resolve(version: number, outcome: 'applied' | 'rolled_back', checksum: string | undefined): Promise<HistoryEntry> {
    if (!(await this.existingTables()).history) throw new BrokerError('not_found', `no migration history (${this.tables.history}) in this database: nothing to resolve`);
    return this.transaction('resolve', async (tx, tag) => {
      const [leaseRows] = await tx.run({ sql: `SELECT CURRENT_TIMESTAMP() AS now, l.* FROM (SELECT 1) LEFT JOIN ${this.tables.lock} l ON l.name = @name`, params: { name: LOCK_NAME }, json: true, requestOptions: { requestTag: tag } });
      const leaseRow = (leaseRows[0] ?? {}) as Row;
      const lease = leaseRow.token ? toLease(leaseRow) : undefined;
      if (lease && lease.expiresAt.getTime() > (leaseRow.now as Date).getTime()) {
        throw new BrokerError('lock_held', `a run holds the lock (${lease.owner} until ${lease.expiresAt.toISOString()}): wait for it, or "oidc-broker spanner unlock --force" if it is gone`);
      }
      const [rows] = await tx.run({ sql: `SELECT * FROM ${this.tables.history} WHERE event = 'apply' AND version = @version AND status IN ('started', 'failed')`, params: { version }, json: true, requestOptions: { requestTag: tag } });
      const row = rows[0] as Row | undefined;
      if (!row) throw new BrokerError('not_found', `version ${version} is not dirty: nothing to resolve`);
      const entry = toEntry(row);
      await tx.runUpdate({
        sql: `UPDATE ${this.tables.history} SET status = @status, checksum = @checksum, finished_at = COALESCE(finished_at, CURRENT_TIMESTAMP()) WHERE id = @id`,
        params: { id: entry.id, status: outcome, checksum: checksum ?? entry.checksum }, requestOptions: { requestTag: tag },
      });
      await this.insertEvent(tx, tag, 'resolve', version, `marked ${entry.file} ${outcome.replace('_', ' ')} (was ${entry.status}${entry.error ? `: ${entry.error}` : ''}; left by pipeline ${entry.pipelineId || '?'} job ${entry.jobId || '?'})`);
      return entry;
    });
  }
}
