/**
 * `oidc-broker spanner` against the real Cloud Spanner emulator: one emulator for the suite (it logs every request so
 * the request tags can be checked), a database per test, the CLI run as a child process where its exit code, its
 * messages or its death matter, and the runner in-process elsewhere (the Spanner client takes seconds to load).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../src/core/errors.js';
import { withRunContext } from '../src/spanner/context.js';
import { LeaseKeeper } from '../src/spanner/lease-keeper.js';
import { migrate, type MigrateResult } from '../src/spanner/runner.js';
import { startEmulator, type Emulator } from './support/spanner-emulator.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PIPELINE = { CI_PROJECT_PATH: 'platform/payments', CI_PROJECT_ID: '42', CI_PIPELINE_ID: '9001', CI_JOB_ID: '7001', CI_COMMIT_SHA: 'c0ffee', CI_COMMIT_REF_NAME: 'main', GITLAB_USER_LOGIN: 'alice', CI_ENVIRONMENT_NAME: 'production' };

let emulator: Emulator;
let root: string;
let counter = 0;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onStderr` sees stderr as it arrives and may kill the child. */
function cli(args: string[], env: Record<string, string> = {}, onStderr?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<CliRun> {
  const child = spawn(process.execPath, [BIN, 'spanner', ...args], { env: { ...process.env, ...PIPELINE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    onStderr?.(stderr, child);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
}

/** A fresh database and a migrations directory holding `files`. */
async function setup(files: Record<string, string>): Promise<{ database: string; dir: string }> {
  counter += 1;
  const id = counter;
  const database = await emulator.createDatabase(`db-${id}`);
  const dir = join(root, `m${id}`);
  await writeMigrations(dir, files);
  return { database, dir };
}

async function writeMigrations(dir: string, files: Record<string, string>): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
}

const context = (database: string, env: Record<string, string> = PIPELINE, exchange?: unknown) => ({
  database, historyTable: 'oidc_broker_migrations', databaseRole: undefined, tokenFile: undefined, exchange, env: { ...env, SPANNER_EMULATOR_HOST: emulator.host }, log: () => undefined,
});

interface HereOptions {
  dryRun?: boolean;
  env?: Record<string, string>;
  lockTimeoutMs?: number;
  ddlBatch?: number;
  log?: (line: string) => void;
}

/** The runner in-process (its own Spanner client); returns its result or the coded error it threw. */
async function migrateHere(database: string, dir: string, options: HereOptions = {}): Promise<MigrateResult | BrokerError> {
  try {
    return await withRunContext({ ...context(database, options.env), log: options.log ?? (() => undefined) }, (run) => migrate(run, {
      dir, dryRun: Boolean(options.dryRun), allowOutOfOrder: false, leaseMs: 10_000, lockTimeoutMs: options.lockTimeoutMs ?? 30_000, progressEveryMs: 8000, ddlBatch: options.ddlBatch ?? 50,
    }));
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
}

async function query(database: string, sql: string): Promise<Record<string, unknown>[]> {
  const [rows] = await emulator.database(database.split('/').pop() as string).run({ sql, json: true });
  return rows as Record<string, unknown>[];
}

const history = (database: string) => query(database, "SELECT version, status FROM oidc_broker_migrations WHERE event = 'apply' ORDER BY version, status");
const CREATE_USERS = '-- the users; with a comment\nCREATE TABLE users (\n  id INT64 NOT NULL,\n  name STRING(MAX), -- display name\n) PRIMARY KEY (id);\n';
const INDEX_USERS = 'CREATE INDEX users_by_name ON users (name);\n';

describe('spanner migrations on the Cloud Spanner emulator', { concurrency: 4 }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'oidc-broker-spanner-'));
    emulator = await startEmulator({ logRequests: true });
  });
  after(async () => {
    await emulator?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('applies fresh files, re-runs as a no-op, applies a later file, and records the pipeline and approvers', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS, '0002_index.sql': INDEX_USERS });
    const brokerDir = join(root, 'broker-out');
    await writeMigrations(brokerDir, {});
    await writeFile(join(brokerDir, 'exchange.json'), JSON.stringify({ requestId: 'req-1', rule: 'payments-prod', subject: {}, approvals: { deployment: [{ user: 'bob', at: '2026-01-01T00:00:00Z' }], mergeRequest: { iid: 7, approvedBy: ['carol'] } } }));
    const env = { SPANNER_EMULATOR_HOST: emulator.host, OIDC_BROKER_DIR: brokerDir };

    const first = await cli(['migrate', '--database', database, '--dir', dir], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /applying 0001_create_users\.sql \(ddl, 1 statement\)/);
    assert.match(first.stdout, /2 applied/);
    assert.deepEqual(await history(database), [{ version: 1, status: 'applied' }, { version: 2, status: 'applied' }]);

    const lines: string[] = [];
    const again = await migrateHere(database, dir, { log: (line) => lines.push(line) });
    assert.ok(!(again instanceof Error), String(again));
    assert.deepEqual(again.applied, []);
    assert.deepEqual(lines, ['up to date: 2 versions applied']);

    await writeMigrations(dir, { '0003_emails.sql': 'ALTER TABLE users ADD COLUMN email STRING(MAX)' });
    const later = await migrateHere(database, dir);
    assert.ok(!(later instanceof Error), String(later));
    assert.deepEqual(later.applied.map((row) => row.version), [3]);

    const status = await cli(['status', '--database', database, '--dir', dir, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout);
    assert.deepEqual(Object.keys(report).sort(), ['applied', 'database', 'dirty', 'events', 'historyTable', 'lock', 'pending', 'problems']);
    assert.equal(report.database, database);
    assert.deepEqual(report.pending, []);
    assert.deepEqual(report.dirty, []);
    assert.equal(report.lock, null);
    assert.equal(report.applied.length, 3);
    const row = report.applied[0];
    assert.deepEqual(Object.keys(row).sort(), ['approvers', 'checksum', 'commitSha', 'durationMs', 'environment', 'file', 'finishedAt', 'jobId', 'kind', 'pipelineId', 'projectPath', 'ref', 'rule', 'startedAt', 'statementCount', 'user', 'version']);
    assert.deepEqual({ ...row, checksum: undefined, startedAt: undefined, finishedAt: undefined, durationMs: undefined }, {
      version: 1, file: '0001_create_users.sql', kind: 'ddl', checksum: undefined, statementCount: 1, startedAt: undefined, finishedAt: undefined, durationMs: undefined,
      projectPath: 'platform/payments', pipelineId: '9001', jobId: '7001', commitSha: 'c0ffee', ref: 'main', user: 'alice', environment: 'production', rule: 'payments-prod', approvers: ['bob', 'carol'],
    });
    assert.match(row.checksum, /^[0-9a-f]{64}$/);
    assert.ok(Date.parse(row.finishedAt) >= Date.parse(row.startedAt));

    // Spanner sees the pipeline in every request: tags on queries and transactions, and the DDL operation's name.
    const log = emulator.output();
    assert.match(log, /request_tag: "oidc-broker p=9001 j=7001 lock acquire"/);
    assert.match(log, /transaction_tag: "oidc-broker p=9001 j=7001 start v1"/);
    assert.match(log, /operation_id: "oidc_broker_p9001_j7001_v1_[0-9a-f]{8}"/);
  });

  it('runs DML in one transaction and partitioned DML statement by statement', async () => {
    const { database, dir } = await setup({
      '0001_create_users.sql': CREATE_USERS,
      '0002_seed.sql': "-- oidc-broker: dml\nINSERT INTO users (id, name) VALUES (1, 'semi;colon'), (2, \"it's -- not a comment\");\n/* second */ INSERT INTO users (id, name) VALUES (3, '''multi\nline''');\n",
      '0003_backfill.sql': "-- oidc-broker: partitioned-dml\nUPDATE users SET name = CONCAT(name, '!') WHERE id < 3;\nUPDATE users SET name = 'three' WHERE id = 3;\n",
    });
    const result = await migrateHere(database, dir);
    assert.ok(!(result instanceof Error), String(result));
    assert.deepEqual(result.applied.map((row) => [row.version, row.kind, row.statements]), [[1, 'ddl', 1], [2, 'dml', 2], [3, 'partitioned-dml', 2]]);
    assert.deepEqual(await query(database, 'SELECT id, name FROM users ORDER BY id'), [{ id: 1, name: 'semi;colon!' }, { id: 2, name: "it's -- not a comment!" }, { id: 3, name: 'three' }]);
  });

  it('a failing DML file applies nothing and leaves no dirty state', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS, '0002_seed.sql': "-- oidc-broker: dml\nINSERT INTO users (id, name) VALUES (1, 'a');\nINSERT INTO users (id, name) VALUES (1, 'duplicate');\n" });
    const result = await migrateHere(database, dir);
    assert.ok(result instanceof BrokerError);
    assert.match(result.detail, /0002_seed\.sql: statement 2 .* failed: .*nothing of it is applied/s);
    assert.deepEqual(await query(database, 'SELECT id FROM users'), []);
    assert.deepEqual(await history(database), [{ version: 1, status: 'applied' }]);
  });

  it('a failing DDL leaves a clear dirty state, and resolve --rolled-back is the way out', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS, '0002_index.sql': 'CREATE INDEX users_by_nope ON users (nope)' });
    const env = { SPANNER_EMULATOR_HOST: emulator.host };
    // One schema operation per file here, so version 1 is applied before version 2 fails.
    const failed = await cli(['migrate', '--database', database, '--dir', dir, '--ddl-batch', '1'], env);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /oidc-broker spanner: invalid_request: 0002_index\.sql: statement 1 \(CREATE INDEX users_by_nope ON users \(nope\)\) failed: .*nope/);
    assert.match(failed.stderr, /version 2 is now dirty/);
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(await history(database), [{ version: 1, status: 'applied' }, { version: 2, status: 'failed' }]);

    const blocked = await migrateHere(database, dir, { env: { ...PIPELINE, CI_PIPELINE_ID: '9002', CI_JOB_ID: '7002' } });
    assert.ok(blocked instanceof BrokerError);
    assert.equal(blocked.code, 'migration_dirty');
    assert.match(blocked.detail, /version 2 \(0002_index\.sql\) is dirty: failed: .*left by pipeline 9001 job 7001 of platform\/payments/);
    assert.match(blocked.detail, /oidc-broker spanner resolve 2 --rolled-back/);

    await writeFile(join(dir, '0002_index.sql'), INDEX_USERS);
    const resolved = await cli(['resolve', '2', '--database', database, '--rolled-back'], env);
    assert.equal(resolved.code, 0, resolved.stderr);
    assert.match(resolved.stdout, /version 2 \(0002_index\.sql\) marked rolled back/);
    const retried = await migrateHere(database, dir);
    assert.ok(!(retried instanceof Error), String(retried));
    assert.deepEqual(retried.applied.map((row) => row.version), [2]);
    assert.deepEqual(await history(database), [{ version: 1, status: 'applied' }, { version: 2, status: 'applied' }, { version: 2, status: 'rolled_back' }]);
    const events = await query(database, "SELECT event, detail FROM oidc_broker_migrations WHERE event = 'resolve'");
    assert.equal(events.length, 1);
    assert.match(String(events[0]?.detail), /marked 0002_index\.sql rolled back \(was failed/);
  });

  it('consecutive DDL files share one schema operation; a refused batch is retried file by file up to the failing one', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS, '0002_index.sql': INDEX_USERS, '0003_bad.sql': 'ALTER TABLE users ADD COLUMN nope NOPE', '0004_later.sql': 'CREATE TABLE later (id INT64 NOT NULL) PRIMARY KEY (id)' });
    const lines: string[] = [];
    const failed = await migrateHere(database, dir, { log: (line) => lines.push(line) });
    assert.ok(failed instanceof BrokerError);
    assert.match(lines.join('\n'), /Spanner refused the batch of 4 files .*; applying them one at a time/);
    assert.match(failed.detail, /^0003_bad\.sql: statement 1 \(ALTER TABLE users ADD COLUMN nope NOPE\) failed: .*Spanner applied nothing of the batch; version 3 is now dirty/);
    assert.deepEqual(await history(database), [
      { version: 1, status: 'applied' }, { version: 1, status: 'skipped' }, { version: 2, status: 'applied' }, { version: 2, status: 'skipped' },
      { version: 3, status: 'failed' }, { version: 3, status: 'skipped' }, { version: 4, status: 'skipped' },
    ]);
    assert.deepEqual(await query(database, "SELECT table_name FROM information_schema.tables WHERE table_schema = '' AND table_name IN ('users', 'later')"), [{ table_name: 'users' }]);

    const log = emulator.output();
    const batch = /statements: "CREATE TABLE users[^]*?statements: "CREATE TABLE later[^]*?operation_id: "oidc_broker_p9001_j7001_v1_[0-9a-f]{8}"/.test(log);
    assert.ok(batch, 'the four files went to Spanner as one operation named after the pipeline, the job and its first version');
  });

  it('refuses a changed applied file, and --dry-run changes nothing', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS });
    const plan = await migrateHere(database, dir, { dryRun: true });
    assert.ok(!(plan instanceof Error), String(plan));
    assert.deepEqual(plan.plan.pending.map((m) => [m.file, m.kind, m.statements.length]), [['0001_create_users.sql', 'ddl', 1]]);
    assert.deepEqual(await query(database, "SELECT table_name FROM information_schema.tables WHERE table_schema = ''"), [], 'a dry run creates nothing');

    assert.ok(!((await migrateHere(database, dir)) instanceof Error));
    await writeFile(join(dir, '0001_create_users.sql'), CREATE_USERS.replace('display name', 'the name'));
    const refused = await migrateHere(database, dir);
    assert.ok(refused instanceof BrokerError);
    assert.equal(refused.code, 'migration_conflict');
    assert.match(refused.detail, /0001_create_users\.sql changed after it was applied/);
  });

  it('two concurrent runs apply each version once; a live lease makes a run wait, then fail naming the holder', async () => {
    const files: Record<string, string> = {};
    for (let version = 1; version <= 6; version += 1) files[`000${version}_t${version}.sql`] = `CREATE TABLE t${version} (id INT64 NOT NULL) PRIMARY KEY (id)`;
    const { database, dir } = await setup(files);
    // Two runners, each with its own Spanner client, racing for the lease.
    const logs: string[][] = [[], []];
    const runs = await Promise.all([1, 2].map((job, index) => migrateHere(database, dir, { env: { ...PIPELINE, CI_JOB_ID: String(job) }, log: (line) => logs[index]!.push(line) })));
    for (const run of runs) assert.ok(!(run instanceof Error), String(run));
    assert.deepEqual(await history(database), [1, 2, 3, 4, 5, 6].map((version) => ({ version, status: 'applied' })), 'each version exactly once');
    const applied = runs.map((run) => (run as MigrateResult).applied.length);
    assert.equal(applied[0]! + applied[1]!, 6);

    // Another runner holds a live lease: a run without patience fails at once, a patient one prints the holder first.
    await withRunContext(context(database, { ...PIPELINE, CI_JOB_ID: '555' }), async (run) => {
      const holder = new LeaseKeeper(run.store, { leaseMs: 30_000, lockTimeoutMs: 0, log: () => undefined, clock: () => performance.now() });
      await holder.acquire();
      try {
          const impatient = await cli(['migrate', '--database', database, '--dir', dir, '--lock-timeout', '0'], { SPANNER_EMULATOR_HOST: emulator.host });
          assert.equal(impatient.code, 1);
          assert.match(impatient.stderr, /^oidc-broker spanner: lock_held: the migration lock is held by platform\/payments pipeline 9001 job 555 \(user alice\) until \d{4}-/m);
          const lines: string[] = [];
          const waited = await migrateHere(database, dir, { lockTimeoutMs: 1500, log: (line) => lines.push(line) });
          assert.ok(waited instanceof BrokerError);
          assert.equal(waited.code, 'lock_held');
          assert.match(waited.detail, /gave up after --lock-timeout 2s/);
          assert.match(lines[0] ?? '', /^waiting for the migration lock held by platform\/payments pipeline 9001 job 555 \(user alice\) until \d{4}-/);
      } finally {
        await holder.release();
      }
    });
  });

  it('a run killed with SIGKILL is taken over after its lease expires and not before', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS, '0002_index.sql': INDEX_USERS });
    const killed = await cli(['migrate', '--database', database, '--dir', dir, '--lock-lease', '5'], { SPANNER_EMULATOR_HOST: emulator.host, CI_JOB_ID: '666' }, (text, child) => {
      if (text.includes('applying ')) child.kill('SIGKILL');
    });
    assert.equal(killed.code, null, 'killed by a signal');

    const lease = await withRunContext(context(database), (run) => run.store.lease());
    assert.match(lease.lease?.owner ?? '', /job 666/);
    const expiresAt = lease.lease!.expiresAt.getTime();
    const early = await migrateHere(database, dir, { lockTimeoutMs: 0 });
    assert.ok(early instanceof BrokerError, 'no takeover before the lease expires');
    assert.equal(early.code, 'lock_held');
    assert.match(early.detail, /job 666/);

    let tookOverAt = 0;
    const lines: string[] = [];
    const late = await migrateHere(database, dir, { log: (line) => {
      lines.push(line);
      if (!tookOverAt && line.startsWith('took over')) tookOverAt = Date.now();
    } });
    assert.match(lines.join('\n'), /took over the expired lock of platform\/payments pipeline 9001 job 666/);
    assert.ok(tookOverAt >= expiresAt, `took over at ${new Date(tookOverAt).toISOString()}, lease expired ${new Date(expiresAt).toISOString()}`);
    // The killed run either had not started a version (so the new run applies everything) or left it dirty.
    if (late instanceof BrokerError) {
      assert.equal(late.code, 'migration_dirty');
      assert.match(late.detail, /version 1 \(0001_create_users\.sql\) is dirty: started and never finished .* job 666/);
    } else {
      assert.deepEqual(await history(database), [{ version: 1, status: 'applied' }, { version: 2, status: 'applied' }]);
    }
  });

  it('unlock --force removes a live lease, records who did it, and the holder notices', async () => {
    const { database, dir } = await setup({ '0001_create_users.sql': CREATE_USERS });
    assert.ok(!((await migrateHere(database, dir)) instanceof Error));
    const env = { SPANNER_EMULATOR_HOST: emulator.host };
    await withRunContext(context(database, { ...PIPELINE, CI_JOB_ID: '777' }), async (run) => {
      const holder = new LeaseKeeper(run.store, { leaseMs: 1500, lockTimeoutMs: 0, log: () => undefined, clock: () => performance.now() });
      await holder.acquire();
      try {
      const refused = await cli(['unlock', '--database', database], env);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /pass --force/);
      const forced = await cli(['unlock', '--database', database, '--force'], { ...env, GITLAB_USER_LOGIN: 'operator' });
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /removed the lock of platform\/payments pipeline 9001 job 777/);
      // The holder notices at its next renewal tick (every half lease); on a loaded machine a tick can come late, so wait
      // for it with a bound rather than a fixed sleep.
      const noticed = await eventually(() => { try { holder.check(); return false; } catch (err) { return err instanceof BrokerError && err.code === 'lock_held'; } }, 15_000);
      assert.ok(noticed, 'the holder did not notice the forced unlock within 15 s');
      } finally {
        await holder.release(); // stops its renewal timer even when an assertion failed, so the test process can end
      }
    });
    const events = await query(database, "SELECT event, user_login, detail FROM oidc_broker_migrations WHERE event = 'unlock'");
    assert.equal(events.length, 1);
    assert.equal(events[0]?.user_login, 'operator');
    assert.match(String(events[0]?.detail), /removed the lease of platform\/payments pipeline 9001 job 777/);
  });
});

async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return condition();
}
