/**
 * `npm run bench:spanner`: what the migration runner costs over the bare client, on the Cloud Spanner emulator.
 *
 *   1. one emulator (test/support/spanner-emulator.ts), 50 small DDL files (one CREATE TABLE each);
 *   2. rounds rotating between three ways, each on a fresh database, timed from the first request to the last:
 *      - bare: @google-cloud/spanner's updateDatabaseDdl, one call per file, awaited to completion; no history, no lock;
 *      - ours: `migrate()` as the CLI runs it by default: read and hash the files, plan, create the history and lock
 *        tables, take the lease, record the versions as started, one schema operation for the consecutive DDL files
 *        (as Spanner recommends), record them as applied, release the lease;
 *      - ours with --ddl-batch 1: the same, one schema operation and two history transactions per file;
 *   3. the lease on its own: acquire + release and renew, each repeated, median and p90 in ms;
 *   4. ratio ours ÷ bare (medians of the rounds): PASS/FAIL against the target (≤ 1.2); the per-file ratio beside it.
 *
 * The emulator applies DDL in milliseconds; real Spanner takes seconds per schema change, so the fixed per-version
 * bookkeeping (two small read-write transactions) weighs far less there. Options: --rounds N (default 3), --json FILE.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withRunContext } from '../src/spanner/context.js';
import { migrate } from '../src/spanner/runner.js';
import { startEmulator, type Emulator } from '../test/support/spanner-emulator.js';

const FILES = 50;
const TARGET_RATIO = 1.2;
const LOCK_SAMPLES = 40;

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

const median = (values: readonly number[]): number => percentile(values, 0.5);
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

const statement = (version: number): string => `CREATE TABLE bench_${version} (id INT64 NOT NULL, value STRING(MAX)) PRIMARY KEY (id)`;

async function bare(emulator: Emulator, id: string): Promise<number> {
  const path = await emulator.createDatabase(id);
  const database = emulator.database(path.split('/').pop() as string);
  await database.run('SELECT 1'); // as ours: the session pool is open and settled before the clock starts
  const started = performance.now();
  for (let version = 1; version <= FILES; version += 1) {
    const [operation] = await database.updateSchema([statement(version)]);
    await operation.promise();
  }
  return performance.now() - started;
}

const runOptions = (database: string, emulator: Emulator) => ({
  database, historyTable: 'oidc_broker_migrations', databaseRole: undefined, tokenFile: undefined, exchange: undefined,
  env: { SPANNER_EMULATOR_HOST: emulator.host, CI_PIPELINE_ID: '1', CI_JOB_ID: '1', CI_PROJECT_PATH: 'bench/app' }, log: () => undefined,
});

async function ours(emulator: Emulator, id: string, dir: string, ddlBatch: number): Promise<{ ms: number; acquireMs: number }> {
  const database = await emulator.createDatabase(id);
  return withRunContext(runOptions(database, emulator), async (context) => {
    await context.connection.database.run('SELECT 1'); // the session pool's first session, which bare's handle also has warm
    const started = performance.now();
    const result = await migrate(context, { dir, dryRun: false, allowOutOfOrder: false, leaseMs: 60_000, lockTimeoutMs: 0, progressEveryMs: 8000, ddlBatch });
    const ms = performance.now() - started;
    if (result.applied.length !== FILES) throw new Error(`applied ${result.applied.length} of ${FILES}`);
    return { ms, acquireMs: result.lockAcquireMs };
  });
}

async function lockCosts(emulator: Emulator): Promise<{ acquire: number[]; renew: number[] }> {
  const database = await emulator.createDatabase('bench-lock');
  return withRunContext(runOptions(database, emulator), async ({ store }) => {
    await store.ensureTables();
    const acquire: number[] = [];
    const renew: number[] = [];
    for (let sample = 0; sample < LOCK_SAMPLES; sample += 1) {
      const token = `token-${sample}`;
      let started = performance.now();
      const taken = await store.tryAcquire(token, 60_000);
      if (taken.action !== 'take') throw new Error('the lease was not free');
      acquire.push(performance.now() - started);
      started = performance.now();
      if (!(await store.renew(token, 60_000))) throw new Error('renewal failed');
      renew.push(performance.now() - started);
      await store.release(token);
    }
    return { acquire, renew };
  });
}

async function main(): Promise<void> {
  const rounds = Number(option('--rounds') ?? 3);
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-bench-spanner-'));
  for (let version = 1; version <= FILES; version += 1) await writeFile(join(dir, `${String(version).padStart(4, '0')}_bench_${version}.sql`), `${statement(version)};\n`);
  const emulator = await startEmulator();
  try {
    const bareMs: number[] = [];
    const oursMs: number[] = [];
    const perFileMs: number[] = [];
    const acquireInRun: number[] = [];
    await bare(emulator, 'warm-bare');
    await ours(emulator, 'warm-ours', dir, FILES);
    for (let round = 0; round < rounds; round += 1) {
      // Rotate which goes first, so drift in the machine's load falls on all three.
      const order = ['bare', 'ours', 'per-file'];
      for (let shift = 0; shift < round % 3; shift += 1) order.push(order.shift() as string);
      for (const which of order) {
        if (which === 'bare') bareMs.push(await bare(emulator, `bare-${round}`));
        else if (which === 'per-file') perFileMs.push((await ours(emulator, `per-file-${round}`, dir, 1)).ms);
        else {
          const run = await ours(emulator, `ours-${round}`, dir, FILES);
          oursMs.push(run.ms);
          acquireInRun.push(run.acquireMs);
        }
      }
      console.log(`round ${round + 1}: bare ${bareMs.at(-1)?.toFixed(0)} ms, ours ${oursMs.at(-1)?.toFixed(0)} ms, ours --ddl-batch 1 ${perFileMs.at(-1)?.toFixed(0)} ms`);
    }
    const lock = await lockCosts(emulator);
    const ratio = median(oursMs) / median(bareMs);
    const perFileRatio = median(perFileMs) / median(bareMs);
    const figures = {
      files: FILES, rounds,
      bareMs: median(bareMs), oursMs: median(oursMs), ratio,
      perFileMs: median(perFileMs), perFileRatio,
      perFileOverheadMsPerVersion: (median(perFileMs) - median(bareMs)) / FILES,
      lockAcquireMs: { p50: median(lock.acquire), p90: percentile(lock.acquire, 0.9), inRun: median(acquireInRun) },
      lockRenewMs: { p50: median(lock.renew), p90: percentile(lock.renew, 0.9) },
      target: TARGET_RATIO, pass: ratio <= TARGET_RATIO,
    };
    console.log(`${FILES} DDL migrations: bare client ${figures.bareMs.toFixed(0)} ms, oidc-broker ${figures.oursMs.toFixed(0)} ms, oidc-broker --ddl-batch 1 ${figures.perFileMs.toFixed(0)} ms (medians of ${rounds})`);
    console.log(`ratio ours ÷ bare: ${ratio.toFixed(2)} (target ≤ ${TARGET_RATIO}): ${figures.pass ? 'PASS' : 'FAIL'}`);
    console.log(`ratio --ddl-batch 1 ÷ bare: ${perFileRatio.toFixed(2)} (${figures.perFileOverheadMsPerVersion.toFixed(1)} ms of bookkeeping per version)`);
    console.log(`lease: acquire p50 ${figures.lockAcquireMs.p50.toFixed(1)} ms (p90 ${figures.lockAcquireMs.p90.toFixed(1)}), renew p50 ${figures.lockRenewMs.p50.toFixed(1)} ms (p90 ${figures.lockRenewMs.p90.toFixed(1)}); in a run (with table check) ${figures.lockAcquireMs.inRun.toFixed(1)} ms`);
    const out = option('--json');
    if (out) await writeFile(out, `${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    await emulator.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
