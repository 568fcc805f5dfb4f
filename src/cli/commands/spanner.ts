/**
 * `oidc-broker spanner migrate | status | unlock | resolve`: schema migrations for the database a pipeline was granted,
 * under a lease lock in Spanner, with a history row per version naming the pipeline and its approvers.
 * Exit codes: 0 ok, 1 failed (lock held, dirty, invalid migration, denied), 2 usage error, 3 Spanner unavailable.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import { readMigrationFiles } from '../../spanner/files.js';
import type { MigrateResult, RunContext } from '../../spanner/runner.js';
import type { StatusReport } from '../../spanner/status.js';
import { EXIT, formatTable } from '../output.js';

class UsageError extends Error {}

interface CommonFlags {
  readonly database: string;
  readonly historyTable: string;
  readonly databaseRole?: string;
  readonly tokenFile?: string;
  readonly exchangeFile?: string;
  readonly json?: boolean;
}

const seconds = (name: string) => (value: string): number => {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new InvalidArgumentError(`${name} must be a number of seconds`);
  return parsed;
};

const count = (name: string) => (value: string): number => {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return parsed;
};

/** The exchange output (rule, approvals, requestId) next to the credentials, when the job ran `oidc-broker exchange`. */
function readExchange(flags: CommonFlags): unknown {
  const dir = process.env.OIDC_BROKER_DIR;
  const file = flags.exchangeFile ?? (dir ? join(dir, 'exchange.json') : undefined);
  if (!file || (!flags.exchangeFile && !existsSync(file))) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new BrokerError('invalid_request', `${file} is not the exchange output: ${(err as Error).message}`, { cause: err });
  }
}

async function withContext<T>(flags: CommonFlags, body: (context: RunContext) => Promise<T>): Promise<T> {
  // The Spanner client takes seconds to load; only spanner commands pay for it.
  const { withRunContext } = await import('../../spanner/context.js');
  return withRunContext({
    database: flags.database, historyTable: flags.historyTable, databaseRole: flags.databaseRole, tokenFile: flags.tokenFile,
    exchange: readExchange(flags), env: process.env, log: (line) => process.stderr.write(`${line}\n`),
  }, body);
}

/** Runs a command body; every failure becomes one line on stderr and an exit code, never a stack trace. */
async function run(body: () => Promise<void>): Promise<void> {
  try {
    await body();
    process.exitCode = EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`usage: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    const coded = isBrokerError(err) ? err : new BrokerError('upstream_unavailable', String((err as Error)?.message ?? err), { cause: err });
    process.stderr.write(`oidc-broker spanner: ${coded.code}: ${coded.detail}\n`);
    process.exitCode = coded.code === 'upstream_unavailable' ? EXIT.upstream : EXIT.denied;
  }
}

function printMigrate(result: MigrateResult, json: boolean): void {
  const pending = result.plan.pending.map((migration) => ({ version: migration.version, file: migration.file, kind: migration.kind, statements: migration.statements }));
  if (json) {
    process.stdout.write(`${JSON.stringify({ dryRun: result.dryRun, applied: result.applied, pending: result.dryRun ? pending : [], dirty: result.plan.dirty.map((row) => ({ version: row.version, file: row.file, status: row.status })) }, null, 2)}\n`);
    return;
  }
  if (!result.dryRun) {
    process.stdout.write(`${result.applied.length} applied, ${result.plan.applied.length + result.applied.length} versions in total\n`);
    return;
  }
  if (result.plan.dirty[0]) process.stdout.write(`dirty: version ${result.plan.dirty[0].version} (${result.plan.dirty[0].file}) blocks a real run\n`);
  if (pending.length === 0) {
    process.stdout.write('dry run: nothing to apply\n');
    return;
  }
  process.stdout.write(`dry run: ${pending.length} to apply, nothing changed\n`);
  for (const migration of pending) {
    process.stdout.write(`\n${migration.file} (${migration.kind})\n${migration.statements.map((statement, index) => `  ${index + 1}. ${statement.replace(/\s+/g, ' ')}`).join('\n')}\n`);
  }
}

function printStatus(report: StatusReport, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const str = (value: unknown): string => (value === null || value === undefined ? '' : Array.isArray(value) ? value.join(',') : String(value));
  const lines = [`database ${report.database} (history table ${report.historyTable})`];
  lines.push(report.applied.length === 0 ? 'applied: none' : formatTable(['VERSION', 'FILE', 'KIND', 'FINISHED', 'PIPELINE', 'JOB', 'USER', 'APPROVERS'],
    report.applied.map((row) => [row.version, row.file, row.kind, row.finishedAt, row.pipelineId, row.jobId, row.user, row.approvers].map(str))));
  if (report.pending) lines.push(report.pending.length === 0 ? 'pending: none' : `pending: ${report.pending.map((row) => str(row.file)).join(', ')}`);
  for (const row of report.dirty) lines.push(`DIRTY: version ${str(row.version)} (${str(row.file)}) ${str(row.status)} by pipeline ${str(row.pipelineId)} job ${str(row.jobId)}${row.error ? `: ${str(row.error)}` : ''}; ${str(row.resolve)}`);
  lines.push(report.lock ? `lock: held by ${str(report.lock.owner)} until ${str(report.lock.expiresAt)}${report.lock.expired ? ' (expired: the next run takes it over)' : ''}` : 'lock: free');
  for (const problem of report.problems) lines.push(`problem: ${problem}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function commonOptions(command: Command): Command {
  return command
    .requiredOption('--database <name>', 'projects/PROJECT/instances/INSTANCE/databases/DATABASE', process.env.SPANNER_DATABASE)
    .option('--history-table <name>', 'history table (its lock table is NAME_lock); created on the first run', 'oidc_broker_migrations')
    .option('--database-role <role>', 'fine-grained access control role for every session')
    .option('--token-file <file>', 'access token file, re-read when it changes', process.env.CLOUDSDK_AUTH_ACCESS_TOKEN_FILE)
    .option('--exchange-file <file>', 'the exchange output with rule and approvers (default $OIDC_BROKER_DIR/exchange.json when present)')
    .option('--json', 'machine-readable output on stdout');
}

/** Adds `spanner migrate | status | unlock | resolve`. */
export function registerSpannerCommands(program: Command): void {
  const spanner = program.command('spanner').description('Spanner schema migrations under a lease lock, with pipeline history');

  commonOptions(spanner.command('migrate').description('apply pending migrations in order under the migration lock'))
    .requiredOption('--dir <dir>', 'directory of NNNN_description.sql files')
    .option('--dry-run', 'print the plan (versions, kinds, statements) and change nothing')
    .option('--allow-out-of-order', 'apply files older than the newest applied version, and allow gaps')
    .addOption(new Option('--lock-timeout <seconds>', 'how long to wait for another run to release the lock').default(300).argParser(seconds('--lock-timeout')))
    .addOption(new Option('--ddl-batch <versions>', 'at most this many consecutive DDL files per schema operation (1: one per file)').default(50).argParser(count('--ddl-batch')))
    .addOption(new Option('--lock-lease <seconds>', 'lease length; renewed every third of it while the run lasts').default(60).argParser(seconds('--lock-lease')))
    .action((flags: CommonFlags & { dir: string; dryRun?: boolean; allowOutOfOrder?: boolean; lockTimeout: number; lockLease: number; ddlBatch: number }) => run(async () => {
      if (flags.lockLease < 1) throw new UsageError('--lock-lease must be at least 1 second');
      const { migrate } = await import('../../spanner/runner.js');
      const result = await withContext(flags, (context) => migrate(context, {
        dir: resolve(flags.dir), dryRun: Boolean(flags.dryRun), allowOutOfOrder: Boolean(flags.allowOutOfOrder),
        leaseMs: flags.lockLease * 1000, lockTimeoutMs: flags.lockTimeout * 1000, progressEveryMs: 8000, ddlBatch: flags.ddlBatch,
      }));
      printMigrate(result, Boolean(flags.json));
    }));

  commonOptions(spanner.command('status').description('applied (with pipeline and approvers), pending, dirty, and the lock holder'))
    .option('--dir <dir>', 'also list the files not applied yet')
    .option('--allow-out-of-order', 'judge the files as migrate --allow-out-of-order would')
    .action((flags: CommonFlags & { dir?: string; allowOutOfOrder?: boolean }) => run(async () => {
      const { status } = await import('../../spanner/status.js');
      const report = await withContext(flags, (context) => status(context, { dir: flags.dir === undefined ? undefined : resolve(flags.dir), allowOutOfOrder: Boolean(flags.allowOutOfOrder) }));
      printStatus(report, Boolean(flags.json));
    }));

  commonOptions(spanner.command('unlock').description('operators: remove the migration lock whoever holds it (recorded in the history)'))
    .option('--force', 'required: confirms that the holder is gone')
    .action((flags: CommonFlags & { force?: boolean }) => run(async () => {
      if (!flags.force) throw new UsageError('unlock removes a lock another run may still hold: pass --force once you know the holder is gone (spanner status shows it)');
      const removed = await withContext(flags, async (context) => {
        await context.store.ensureTables();
        return context.store.forceUnlock();
      });
      process.stdout.write(removed ? `removed the lock of ${removed.owner} (it expired ${removed.expiresAt.toISOString()})\n` : 'no lock was held\n');
    }));

  commonOptions(spanner.command('resolve').description('operators: mark a dirty version rolled back (it runs again) or applied (recorded in the history)'))
    .argument('<version>', 'the dirty version')
    .option('--rolled-back', 'no part of the version remains applied; the next migrate runs it again')
    .option('--applied', 'the version is fully applied (finished by hand)')
    .option('--dir <dir>', 'with --applied: record the checksum of the file as it is now')
    .action((versionText: string, flags: CommonFlags & { rolledBack?: boolean; applied?: boolean; dir?: string }) => run(async () => {
      const version = Number(versionText);
      if (!Number.isSafeInteger(version) || version < 1) throw new UsageError('the version must be a positive integer');
      if (Boolean(flags.rolledBack) === Boolean(flags.applied)) throw new UsageError('pass exactly one of --rolled-back and --applied');
      let checksum: string | undefined;
      if (flags.applied && flags.dir) {
        const file = (await readMigrationFiles(resolve(flags.dir))).find((candidate) => Number(/^(\d+)_/.exec(candidate.name)?.[1]) === version);
        if (!file) throw new BrokerError('not_found', `no file for version ${version} in ${flags.dir}`);
        checksum = file.checksum;
      }
      const entry = await withContext(flags, (context) => context.store.resolve(version, flags.applied ? 'applied' : 'rolled_back', checksum));
      process.stdout.write(`version ${version} (${entry.file}) marked ${flags.applied ? 'applied' : 'rolled back'}\n`);
    }));
}
