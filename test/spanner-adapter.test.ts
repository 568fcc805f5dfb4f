/** The Spanner adapter's edges that need no database: the token file, error translation, progress lines, names. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../src/core/errors.js';
import { TokenFileAuthClient } from '../src/spanner/auth.js';
import { emulatorSessionEnv, mapSpannerError } from '../src/spanner/connect.js';
import { withProgress } from '../src/spanner/runner.js';
import { parseDatabaseName, tableNames } from '../src/spanner/tables.js';

describe('TokenFileAuthClient', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'oidc-broker-token-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('sends the token in the file and picks up a refreshed one', async () => {
    const file = join(dir, 'google-access-token');
    await writeFile(file, 'ya29.first\n');
    const client = new TokenFileAuthClient(file);
    assert.equal((await client.getRequestHeaders()).get('authorization'), 'Bearer ya29.first');
    await writeFile(file, 'ya29.second-and-longer');
    assert.equal((await client.getRequestHeaders()).get('authorization'), 'Bearer ya29.second-and-longer');
    assert.deepEqual(await client.getAccessToken(), { token: 'ya29.second-and-longer' });
  });

  it('refuses an empty or missing file with token_expired, naming the file', async () => {
    const empty = join(dir, 'empty');
    await writeFile(empty, '  \n');
    for (const file of [empty, join(dir, 'missing')]) {
      await assert.rejects(new TokenFileAuthClient(file).getRequestHeaders(), (err: unknown) => err instanceof BrokerError && err.code === 'token_expired' && err.detail.includes(file));
    }
  });
});

describe('mapSpannerError', () => {
  const name = parseDatabaseName('projects/acme/instances/main/databases/payments');
  const who = { principal: 'the service account deploy@acme.iam.gserviceaccount.com' };
  const grpc = (code: number, details: string) => Object.assign(new Error(`${code} X: ${details}`), { code, details });
  const cases: Array<{ name: string; err: unknown; code: string; detail: RegExp }> = [
    { name: 'a missing database', err: grpc(5, 'Database not found: projects/acme/instances/main/databases/payments'), code: 'not_found', detail: /^projects\/acme\/instances\/main\/databases\/payments: Database not found/ },
    { name: 'a missing permission, naming it and the principal', err: grpc(7, 'Caller is missing IAM permission spanner.databases.updateDdl on resource projects/acme/instances/main/databases/payments.'), code: 'permission_denied', detail: /^the service account deploy@acme\.iam\.gserviceaccount\.com lacks spanner\.databases\.updateDdl on projects\/acme/ },
    { name: 'an expired token', err: grpc(16, 'Request had invalid authentication credentials.'), code: 'token_expired', detail: /access token expired or was revoked/ },
    { name: 'a token file that vanished mid-run', err: grpc(14, 'Getting metadata from plugin failed with error: token_expired: the access token file x is empty'), code: 'token_expired', detail: /no usable access token/ },
    { name: 'invalid DDL', err: grpc(3, 'Error parsing Spanner DDL statement: CREATE TABLE ('), code: 'invalid_request', detail: /^applying 0001_x\.sql: Error parsing Spanner DDL statement/ },
    { name: 'an outage', err: grpc(14, 'connect ECONNREFUSED'), code: 'upstream_unavailable', detail: /^Spanner failed while applying 0001_x\.sql: connect ECONNREFUSED$/ },
    {
      name: 'an outage after retries, without the list of every attempt',
      err: new Error('Total timeout of API google.spanner.v1.Spanner exceeded 30000 milliseconds retrying error Error: 14 UNAVAILABLE: Name resolution failed  before any response was received. : Previous errors : [{message: 14 UNAVAILABLE: x}, {message: 14 UNAVAILABLE: x}]'),
      code: 'upstream_unavailable', detail: /exceeded 30000 milliseconds .* before any response was received\.$/,
    },
  ];
  for (const { name: caseName, err, code, detail } of cases) {
    it(caseName, () => {
      const mapped = mapSpannerError(err, who, name, 'applying 0001_x.sql');
      assert.equal(mapped.code, code);
      assert.match(mapped.detail, detail);
      assert.equal(mapped.cause, err);
    });
  }
});

describe('names and settings', () => {
  it('parses database names and refuses anything else', () => {
    assert.deepEqual(parseDatabaseName('projects/p-1/instances/i-1/databases/d_1'), { project: 'p-1', instance: 'i-1', database: 'd_1', path: 'projects/p-1/instances/i-1/databases/d_1' });
    for (const bad of ['payments', 'projects/p/instances/i/databases/', 'projects/p/instances/i/databases/d/extra', 'projects/p/instances/i/databases/d; DROP']) {
      assert.throws(() => parseDatabaseName(bad), (err: unknown) => err instanceof BrokerError && err.code === 'invalid_request');
    }
  });

  it('accepts only identifiers as the history table', () => {
    assert.deepEqual(tableNames('schema_history'), { history: 'schema_history', lock: 'schema_history_lock' });
    assert.throws(() => tableNames('history; DROP TABLE x'), /Spanner identifier/);
  });

  it('turns multiplexed sessions off for the emulator only, and never overrides an explicit setting', () => {
    assert.deepEqual(emulatorSessionEnv({}), {});
    assert.deepEqual(emulatorSessionEnv({ SPANNER_EMULATOR_HOST: 'localhost:9010', GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS: 'true' }), {
      GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW: 'false', GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_PARTITIONED_OPS: 'false',
    });
  });
});

describe('withProgress', () => {
  it('prints progress while the work runs and stops when it settles', async () => {
    const lines: number[] = [];
    let finish: (value: string) => void = () => undefined;
    const work = new Promise<string>((resolve) => { finish = resolve; });
    let ticks = 0;
    const done = withProgress(work, 5, () => ticks, (elapsed) => {
      lines.push(elapsed);
      ticks += 10;
      if (lines.length === 3) finish('ok');
    });
    assert.equal(await done, 'ok');
    const printed = lines.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(lines.length, printed, 'no progress after the work settled');
    assert.deepEqual(lines.slice(0, 3), [0, 10, 20]);
  });
});
