/**
 * The spanner-migrate component and its classic job, run by gitlab-ci-local (shell executor) against the real broker
 * (its google grant minted by the stand-in Google) and the real Cloud Spanner emulator: the first pipeline applies the
 * migrations, the second changes nothing, and a merge request pipeline only prints the plan. The job's CLI reaches the
 * emulator through SPANNER_EMULATOR_HOST, which the test passes as a pipeline variable.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createCiWorkspace, TEMPLATES_PROJECT, type CiWorkspace, type PipelineRun } from './support/gitlab-ci-local.js';
import { SPANNER_ADMIN, startGoogleBroker, TARGET, type GoogleBroker } from './support/google-broker.js';
import { AUDIENCE } from './support/policies.js';
import { startEmulator, type Emulator } from './support/spanner-emulator.js';

const TAG = '2.0.0';
const DATABASE_ID = 'payments';
const POLICY = `
version: 1
rules:
  - name: payments-migrate
    when: { project_id: "20", ref_path: refs/heads/main, environment: production }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}], lifetime: 15m }
  - name: payments-migrate-plan
    when: { project_id: "20", environment: plan }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}], lifetime: 15m }
`;

const MIGRATIONS = {
  'db/migrations/0001_create_releases.sql': 'CREATE TABLE releases (\n  release_id STRING(64) NOT NULL,\n  note STRING(MAX),\n) PRIMARY KEY (release_id);\n',
  'db/migrations/0002_first_release.sql': "-- oidc-broker: dml\nINSERT INTO releases (release_id, note) VALUES ('r1', 'first');\n",
};
/** A merge request's migrations: the applied ones and one more. */
const PROPOSED = {
  'db/next/0001_create_releases.sql': MIGRATIONS['db/migrations/0001_create_releases.sql'],
  'db/next/0002_first_release.sql': MIGRATIONS['db/migrations/0002_first_release.sql'],
  'db/next/0003_index_notes.sql': 'CREATE INDEX releases_by_note ON releases (note);\n',
};

let emulator: Emulator;
let gb: GoogleBroker;
let workspace: CiWorkspace;
let database: string;

before(async () => {
  emulator = await startEmulator();
  database = await emulator.createDatabase(DATABASE_ID);
  gb = await startGoogleBroker({ policy: POLICY });
  workspace = await createCiWorkspace();
  await workspace.publishTemplates(TAG);
});

after(async () => {
  await workspace?.close();
  await gb?.close();
  await emulator?.stop();
});

const idToken = (environment: string) => gb.h.gitlab.token(AUDIENCE, { ci_config_ref_uri: null, environment });

/** A consumer pipeline including the component at TAG; `more` adds includes and jobs. */
async function migratePipeline(files: Readonly<Record<string, string>>, more: { include?: string; jobs?: string } = {}): Promise<PipelineRun> {
  return workspace.runPipeline({
    ciYaml: `
include:
  - component: $CI_SERVER_FQDN/${TEMPLATES_PROJECT}/spanner-migrate@${TAG}
    inputs:
      broker_url: ${gb.h.url}
      audience: ${AUDIENCE}
      database: ${database}
      environment: production
${more.include ?? ''}
${more.jobs ?? ''}`,
    files,
    variables: {
      BROKER_ID_TOKEN: { values: { production: await idToken('production'), plan: await idToken('plan') } },
      SPANNER_EMULATOR_HOST: emulator.host,
    },
    timeoutMs: 180_000,
  });
}

async function tables(): Promise<string[]> {
  const [rows] = await emulator.database(DATABASE_ID).run({ sql: "SELECT table_name FROM information_schema.tables WHERE table_schema = '' ORDER BY table_name", json: true });
  return (rows as Array<{ table_name: string }>).map((row) => row.table_name);
}

async function indexes(): Promise<string[]> {
  const [rows] = await emulator.database(DATABASE_ID).run({ sql: "SELECT index_name FROM information_schema.indexes WHERE table_name = 'releases' AND index_type = 'INDEX'", json: true });
  return (rows as Array<{ index_name: string }>).map((row) => row.index_name);
}

async function releases(): Promise<unknown[]> {
  const [rows] = await emulator.database(DATABASE_ID).run({ sql: 'SELECT release_id, note FROM releases ORDER BY release_id', json: true });
  return rows;
}

/** Whether the process runs: not gone, and not a zombie waiting for its (re)parent to reap it. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** The refresh worker the job started is gone once the job is (the script stops it on exit), and so are its credentials. */
async function assertRefreshWorkerStopped(log: string): Promise<void> {
  const pid = Number(/refreshing in the background until [^\n]* \(pid (\d+);/.exec(log)?.[1]);
  assert.ok(pid > 0, `the job did not start a refresh worker:\n${log}`);
  for (let tries = 0; tries < 50 && running(pid); tries += 1) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(running(pid), false, `refresh worker ${pid} still runs after the job`);
  const dir = /credentials in (\S+)/.exec(log)?.[1];
  assert.ok(dir, log);
  assert.equal(existsSync(dir), false, `${dir} is left behind`);
}

describe('the spanner-migrate component, included at a tag', { timeout: 600_000 }, () => {
  it('applies the migrations to the emulator with the google grant, in the environment, and stops its refresh worker', async () => {
    const run = await migratePipeline(MIGRATIONS);
    const job = run.job('oidc-broker-spanner-migrate');
    assert.equal(job.status, 'PASS', job.log);
    assert.equal(run.exitCode, 0, run.output);
    assert.match(job.log, /rule payments-migrate granted google/);
    assert.match(job.log, /2 applied, 2 versions in total/);
    assert.deepEqual(await tables(), ['oidc_broker_migrations', 'oidc_broker_migrations_lock', 'releases']);
    assert.deepEqual(await releases(), [{ release_id: 'r1', note: 'first' }]);
    await assertRefreshWorkerStopped(job.log);
    assert.ok(gb.google.issued.size > 0, 'the stand-in Google minted the job\'s access token');
  });

  it('a second pipeline is a no-op, a rules input replaces the default rules, and a merge request pipeline (the classic job) prints the plan and changes nothing', async () => {
    const run = await migratePipeline({ ...MIGRATIONS, ...PROPOSED }, {
      // The classic job (the plan job below runs by its default merge-request rule) and the component again, with a
      // rules input that does not match this branch pipeline: that job must not be created. Its environment has no ID
      // token here, so were it created it would fail on its own rather than spend the production job's token.
      include: `  - project: ${TEMPLATES_PROJECT}
    ref: ${TAG}
    file: ci-templates/oidc-broker.gitlab-ci.yml
  - component: $CI_SERVER_FQDN/${TEMPLATES_PROJECT}/spanner-migrate@${TAG}
    inputs:
      as: migrate-on-tags
      broker_url: ${gb.h.url}
      audience: ${AUDIENCE}
      database: ${database}
      environment: tags
      rules:
        - if: $CI_COMMIT_TAG`,
      jobs: `
plan:
  extends: .oidc-broker-spanner-migrate
  stage: .post
  environment: plan
  variables:
    OIDC_BROKER_URL: ${gb.h.url}
    OIDC_BROKER_AUDIENCE: ${AUDIENCE}
    SPANNER_DATABASE: ${database}
    OIDC_BROKER_MIGRATIONS_DIR: db/next
    CI_PIPELINE_SOURCE: merge_request_event
`,
    });
    const job = run.job('oidc-broker-spanner-migrate');
    assert.equal(job.status, 'PASS', `${job.log}\n(jobs that ran: ${[...run.jobs.keys()].join(', ')})\n${run.output}`);
    assert.match(job.log, /0 applied, 2 versions in total/);
    assert.equal(run.jobs.has('migrate-on-tags'), false, 'the rules input replaced the default rules');
    const plan = run.job('plan');
    assert.equal(plan.status, 'PASS', plan.log);
    assert.match(plan.log, /merge request pipeline: printing the plan, changing nothing/);
    assert.match(plan.log, /dry run: 1 to apply, nothing changed/);
    assert.match(plan.log, /0003_index_notes\.sql \(ddl\)\n[^\n]*1\. CREATE INDEX releases_by_note ON releases \(note\)/);
    assert.deepEqual(await releases(), [{ release_id: 'r1', note: 'first' }], 'the DML did not run again');
    assert.deepEqual(await indexes(), [], 'the planned index was not created');
    await assertRefreshWorkerStopped(plan.log);
  });
});
