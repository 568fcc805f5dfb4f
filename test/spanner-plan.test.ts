/** The pure half of `spanner migrate`: statement splitting, kinds, ordering, checksums, dirty state, lease decisions. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerError } from '../src/core/errors.js';
import { failedGroupOutcomes, groupPending, locateFailure } from '../src/core/spanner/batch.js';
import { decideAcquire, describeHolder, renewInterval } from '../src/core/spanner/lease.js';
import { approversOf, ddlOperationId, ownerName, pipelineFacts, requestTag } from '../src/core/spanner/pipeline.js';
import { dirtyError, parseMigrations, planMigrations, type AppliedVersion, type MigrationFile } from '../src/core/spanner/plan.js';
import { migrationKind, splitStatements } from '../src/core/spanner/sql.js';

const splits: Array<{ name: string; text: string; expected: string[] }> = [
  { name: 'two statements and a trailing semicolon', text: 'CREATE TABLE a (x INT64) PRIMARY KEY (x);\nCREATE INDEX i ON a (x);\n', expected: ['CREATE TABLE a (x INT64) PRIMARY KEY (x)', 'CREATE INDEX i ON a (x)'] },
  { name: 'a semicolon inside single quotes', text: "INSERT INTO t (s) VALUES ('a;b'); SELECT 1", expected: ["INSERT INTO t (s) VALUES ('a;b')", 'SELECT 1'] },
  { name: 'an escaped quote in a string', text: "INSERT INTO t (s) VALUES ('it\\'s; fine')", expected: ["INSERT INTO t (s) VALUES ('it\\'s; fine')"] },
  { name: 'a double-quoted string with a comment marker', text: 'INSERT INTO t (s) VALUES ("-- not; a comment")', expected: ['INSERT INTO t (s) VALUES ("-- not; a comment")'] },
  { name: 'a triple-quoted string across lines', text: "INSERT INTO t (s) VALUES ('''line;\n'still' string''');x", expected: ["INSERT INTO t (s) VALUES ('''line;\n'still' string''')", 'x'] },
  { name: 'a quoted identifier with a semicolon', text: 'CREATE TABLE `odd;name` (x INT64) PRIMARY KEY (x)', expected: ['CREATE TABLE `odd;name` (x INT64) PRIMARY KEY (x)'] },
  { name: 'line comments with semicolons are dropped', text: '-- first; comment\nCREATE TABLE a (x INT64) PRIMARY KEY (x); # another; one\n', expected: ['CREATE TABLE a (x INT64) PRIMARY KEY (x)'] },
  { name: 'a block comment with a semicolon and a quote', text: "CREATE /* it's; here */ TABLE a (x INT64) PRIMARY KEY (x)", expected: ['CREATE   TABLE a (x INT64) PRIMARY KEY (x)'] },
  { name: 'a comment inside a statement keeps tokens apart', text: 'DROP--c\nTABLE a', expected: ['DROP \nTABLE a'] },
  { name: 'empty statements', text: ';;\n;', expected: [] },
];

describe('splitStatements', () => {
  for (const { name, text, expected } of splits) {
    it(name, () => assert.deepEqual(splitStatements('f.sql', text), expected));
  }

  for (const [name, text] of [['an unterminated string', "INSERT INTO t VALUES ('x"], ['an unterminated block comment', 'SELECT 1 /* x'], ['a string broken by a newline', "SELECT 'a\nb'"]]) {
    it(`refuses ${name}, naming the file`, () => {
      assert.throws(() => splitStatements('0001_x.sql', text as string), (err: unknown) => err instanceof BrokerError && err.code === 'invalid_request' && err.detail.startsWith('0001_x.sql'));
    });
  }
});

describe('migrationKind', () => {
  it('is DDL without a directive, and reads the first line', () => {
    assert.equal(migrationKind('f', 'CREATE TABLE a (x INT64) PRIMARY KEY (x)'), 'ddl');
    assert.equal(migrationKind('f', '-- oidc-broker: dml\nINSERT INTO a (x) VALUES (1)'), 'dml');
    assert.equal(migrationKind('f', '--oidc-broker:   partitioned-dml  \r\nUPDATE a SET x = 1 WHERE true'), 'partitioned-dml');
    assert.equal(migrationKind('f', 'SELECT 1;\n-- oidc-broker: dml'), 'ddl');
  });

  it('refuses an unknown kind', () => {
    assert.throws(() => migrationKind('f.sql', '-- oidc-broker: dll\n'), /unknown kind "dll"/);
  });
});

const file = (name: string, text: string, checksum = `sum-${name}`): MigrationFile => ({ name, text, checksum });
const files = [
  file('0001_create.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x)'),
  file('0002_seed.sql', '-- oidc-broker: dml\nINSERT INTO a (x) VALUES (1)'),
  file('0003_index.sql', 'CREATE INDEX i ON a (x)'),
  file('README.md', 'not a migration'),
];
const applied = (version: number, name: string, status: AppliedVersion['status'] = 'applied', checksum = `sum-${name}`): AppliedVersion => ({
  version, file: name, checksum, status, startedAt: '2026-01-01T00:00:00Z', pipelineId: '77', jobId: '88', projectPath: 'g/app', error: status === 'failed' ? 'boom' : '',
});

describe('parseMigrations and planMigrations', () => {
  it('orders versions, reads kinds and ignores other files', () => {
    const migrations = parseMigrations([files[2]!, files[0]!, files[3]!, files[1]!]);
    assert.deepEqual(migrations.map((m) => [m.version, m.kind, m.description]), [[1, 'ddl', 'create'], [2, 'dml', 'seed'], [3, 'ddl', 'index']]);
  });

  const refusals: Array<{ name: string; input: MigrationFile[]; pattern: RegExp }> = [
    { name: 'a .sql file named otherwise', input: [file('create.sql', 'SELECT 1')], pattern: /NNNN_description\.sql/ },
    { name: 'two files with one version', input: [file('0001_a.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x)'), file('001_b.sql', 'CREATE TABLE b (x INT64) PRIMARY KEY (x)')], pattern: /share version 1/ },
    { name: 'DML in a DDL file', input: [file('0001_a.sql', 'INSERT INTO a (x) VALUES (1)')], pattern: /DML in a DDL file: start the file with "-- oidc-broker: dml"/ },
    { name: 'DDL in a DML file', input: [file('0001_a.sql', '-- oidc-broker: dml\nDROP TABLE a')], pattern: /DDL in a dml file/ },
    { name: 'an empty file', input: [file('0001_a.sql', '-- nothing\n')], pattern: /no statements/ },
  ];
  for (const { name, input, pattern } of refusals) {
    it(`refuses ${name}`, () => assert.throws(() => parseMigrations(input), (err: unknown) => err instanceof BrokerError && err.code === 'invalid_request' && pattern.test(err.detail)));
  }

  it('plans the versions not applied yet', () => {
    const plan = planMigrations(parseMigrations(files), [applied(1, '0001_create.sql')], { allowOutOfOrder: false });
    assert.deepEqual(plan.pending.map((m) => m.version), [2, 3]);
    assert.deepEqual(plan.dirty, []);
  });

  const conflicts: Array<{ name: string; input: MigrationFile[]; history: AppliedVersion[]; pattern: RegExp }> = [
    { name: 'a changed applied file', input: files, history: [applied(1, '0001_create.sql', 'applied', 'other')], pattern: /0001_create\.sql changed after it was applied/ },
    { name: 'a gap between files', input: [files[0]!, files[2]!], history: [], pattern: /gap in versions: 0003_index\.sql follows 0001_create\.sql/ },
    { name: 'a file older than the newest applied version', input: files, history: [applied(1, '0001_create.sql'), applied(3, '0003_index.sql')], pattern: /0002_seed\.sql is older than the applied version 3/ },
    { name: 'an applied version whose file is gone', input: [files[0]!], history: [applied(1, '0001_create.sql'), applied(2, '0002_seed.sql')], pattern: /version 2 \(0002_seed\.sql\) is applied but its file is missing/ },
  ];
  for (const { name, input, history, pattern } of conflicts) {
    it(`refuses ${name}`, () => {
      assert.throws(() => planMigrations(parseMigrations(input), history, { allowOutOfOrder: false }), (err: unknown) => err instanceof BrokerError && err.code === 'migration_conflict' && pattern.test(err.detail));
    });
  }

  it('--allow-out-of-order accepts gaps and late files but never a changed applied file', () => {
    const plan = planMigrations(parseMigrations(files), [applied(1, '0001_create.sql'), applied(3, '0003_index.sql')], { allowOutOfOrder: true });
    assert.deepEqual(plan.pending.map((m) => m.version), [2]);
    assert.throws(() => planMigrations(parseMigrations(files), [applied(1, '0001_create.sql', 'applied', 'x')], { allowOutOfOrder: true }), /changed after it was applied/);
  });

  it('reports a dirty version with the pipeline that left it and the commands that resolve it', () => {
    const plan = planMigrations(parseMigrations(files), [applied(1, '0001_create.sql'), applied(2, '0002_seed.sql', 'started')], { allowOutOfOrder: false });
    assert.equal(plan.dirty.length, 1);
    const err = dirtyError(plan.dirty[0]!);
    assert.equal(err.code, 'migration_dirty');
    assert.match(err.detail, /version 2 \(0002_seed\.sql\) is dirty: started and never finished/);
    assert.match(err.detail, /pipeline 77 job 88 of g\/app/);
    assert.match(err.detail, /oidc-broker spanner resolve 2 --rolled-back/);
  });
});

describe('lease decisions', () => {
  const now = new Date('2026-01-01T10:00:00Z');
  const lease = (expiresAt: string) => ({ owner: 'g/app pipeline 1 job 2', token: 't', acquiredAt: new Date('2026-01-01T09:59:00Z'), renewedAt: new Date('2026-01-01T09:59:50Z'), expiresAt: new Date(expiresAt) });

  it('takes a free lease, takes over an expired one, waits for a live one', () => {
    assert.deepEqual(decideAcquire(undefined, now), { action: 'take', expired: undefined });
    const expired = lease('2026-01-01T10:00:00Z');
    assert.deepEqual(decideAcquire(expired, now), { action: 'take', expired });
    const live = lease('2026-01-01T10:00:00.001Z');
    assert.deepEqual(decideAcquire(live, now), { action: 'wait', holder: live });
    assert.equal(describeHolder(live, now), 'g/app pipeline 1 job 2 until 2026-01-01T10:00:00.001Z (acquired 2026-01-01T09:59:00.000Z, renewed 10s ago)');
  });

  it('never says a lease was renewed in the future, and renews a third of the way, at most every 200 ms', () => {
    const ahead = { ...lease('2026-01-01T10:01:00Z'), renewedAt: new Date('2026-01-01T10:00:03Z') };
    assert.match(describeHolder(ahead, now), /renewed 0s ago\)$/);
    assert.match(describeHolder({ ...ahead, renewedAt: new Date('2026-01-01T09:59:58.400Z') }, now), /renewed 2s ago\)$/);
    assert.equal(renewInterval(60), 20_000);
    assert.equal(renewInterval(10), 3333);
    assert.equal(renewInterval(0.3), 200);
  });
});

describe('pipeline facts', () => {
  const env = { CI_PROJECT_PATH: 'g/app', CI_PROJECT_ID: '5', CI_PIPELINE_ID: '123456', CI_JOB_ID: '987654', CI_COMMIT_SHA: 'abc', CI_COMMIT_REF_NAME: 'main', GITLAB_USER_LOGIN: 'alice', CI_ENVIRONMENT_NAME: 'production' };
  const exchange = { requestId: 'r-1', rule: 'deploy-prod', approvals: { deployment: [{ user: 'bob', at: 'x' }], mergeRequest: { iid: 3, approvedBy: ['carol', 'bob'] } }, grants: { google: { accessToken: 'secret' } } };

  it('reads GitLab variables and the exchange rule and approvers, each approver once', () => {
    const facts = pipelineFacts(env, exchange);
    assert.deepEqual(facts, { projectPath: 'g/app', projectId: '5', pipelineId: '123456', jobId: '987654', commitSha: 'abc', ref: 'main', user: 'alice', environment: 'production', rule: 'deploy-prod', requestId: 'r-1', approvers: ['bob', 'carol'] });
    assert.deepEqual(approversOf({ approvals: 'nonsense' }), []);
  });

  it('fills what is missing with empty text, reads numbers, and names the owner in and outside CI', () => {
    const bare = pipelineFacts({ USER: 'dev' }, { rule: 7, requestId: ['x'], approvals: { deployment: [{ user: 'bob' }, { user: 3 }, 'x'], mergeRequest: { approvedBy: ['', 'carol', null] } } });
    assert.deepEqual(bare, { projectPath: '', projectId: '', pipelineId: '', jobId: '', commitSha: '', ref: '', user: 'dev', environment: '', rule: '7', requestId: '', approvers: ['bob', '3', 'carol'] });
    assert.deepEqual(pipelineFacts({}, [{ rule: 'x' }]).rule, '');
    assert.deepEqual(approversOf({ approvals: { deployment: 'bob', mergeRequest: [] } }), []);
    assert.equal(ownerName(bare), 'dev outside CI');
    assert.equal(ownerName({ ...bare, user: '' }), 'someone outside CI');
    assert.equal(ownerName(pipelineFacts(env, undefined)), 'g/app pipeline 123456 job 987654 (user alice)');
    assert.equal(ownerName({ ...bare, jobId: '5' }), 'project ? pipeline ? job 5 (user dev)');
    assert.equal(ownerName({ ...bare, jobId: '5', user: '' }), 'project ? pipeline ? job 5');
  });

  it('tags requests within Spanner limits and names DDL operations by pipeline, job and version', () => {
    const facts = pipelineFacts(env, undefined);
    assert.equal(requestTag(facts, 'lock acquire'), 'oidc-broker p=123456 j=987654 lock acquire');
    assert.ok(requestTag({ ...facts, pipelineId: '9'.repeat(40) }, 'x').length <= 50);
    assert.match(ddlOperationId(facts, 12, 'AB-12'), /^oidc_broker_p123456_j987654_v12_ab12$/);
    assert.equal(requestTag({ ...facts, pipelineId: '', jobId: '' }, 'lock é'), 'oidc-broker p=- j=- lock ?');
    assert.equal(requestTag({ ...facts, pipelineId: '1'.repeat(60) }, 'x'), `oidc-broker p=${'1'.repeat(36)}`);
    assert.equal(ddlOperationId({ ...facts, pipelineId: '', jobId: 'j-7' }, 3, 'Z_9'), 'oidc_broker_p0_j7_v3_z9');
    assert.equal(ddlOperationId(facts, 1, 'a'.repeat(200)).length, 128);
  });
});

describe('DDL batches', () => {
  const migrations = parseMigrations([
    file('0001_a.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x); CREATE INDEX ia ON a (x)'),
    file('0002_b.sql', 'CREATE TABLE b (x INT64) PRIMARY KEY (x); CREATE INDEX ib ON b (x)'),
    file('0003_c.sql', 'CREATE TABLE c (x INT64) PRIMARY KEY (x)'),
    file('0004_seed.sql', '-- oidc-broker: dml\nINSERT INTO a (x) VALUES (1)'),
    file('0005_d.sql', 'CREATE TABLE d (x INT64) PRIMARY KEY (x)'),
  ]);

  it('groups consecutive DDL versions, never across a DML version, at most N per group', () => {
    assert.deepEqual(groupPending(migrations, 50).map((group) => group.map((m) => m.version)), [[1, 2, 3], [4], [5]]);
    assert.deepEqual(groupPending(migrations, 2).map((group) => group.map((m) => m.version)), [[1, 2], [3], [4], [5]]);
    assert.deepEqual(groupPending(migrations, 1).map((group) => group.map((m) => m.version)), [[1], [2], [3], [4], [5]]);
  });

  const group = migrations.slice(0, 3);
  it('maps Spanner\'s committed statement count to applied, failed and skipped versions', () => {
    // 3 statements committed: version 1 (2 statements) applied, version 2 failed on its second statement.
    assert.deepEqual(locateFailure(group, 3, ''), { version: 1, statement: 1 });
    assert.deepEqual(failedGroupOutcomes(group, 3, locateFailure(group, 3, '')), ['applied', 'failed', 'skipped']);
    // Failing on the first statement of version 2: version 1 applied, version 2 dirty all the same.
    assert.deepEqual(failedGroupOutcomes(group, 2, locateFailure(group, 2, '')), ['applied', 'failed', 'skipped']);
  });

  it('a batch refused before it started applied nothing: only the version named in the message is dirty', () => {
    const failure = locateFailure(group, undefined, 'Error parsing Spanner DDL statement: CREATE TABLE c (x INT64) PRIMARY KEY (x) : Syntax error');
    assert.deepEqual(failure, { version: 2, statement: 0 });
    assert.deepEqual(failedGroupOutcomes(group, undefined, failure), ['skipped', 'skipped', 'failed']);
    assert.deepEqual(failedGroupOutcomes(group, undefined, undefined), ['failed', 'skipped', 'skipped'], 'the first version when the message names none');
  });
});

describe('the corners of files, statements, plans and failed batches', () => {
  const refusal = (run: () => unknown, code = 'invalid_request'): string => {
    try {
      run();
    } catch (err) {
      assert.ok(err instanceof BrokerError, String(err));
      assert.equal(err.code, code);
      return err.detail;
    }
    return assert.fail('expected a refusal');
  };

  it('reads a kind only from a whole first line, after a byte-order mark and spaces', () => {
    assert.equal(migrationKind('f', '\uFEFF-- oidc-broker: dml\nINSERT INTO a (x) VALUES (1)'), 'dml');
    assert.equal(migrationKind('f', '   -- oidc-broker: dml\nINSERT INTO a (x) VALUES (1)'), 'dml');
    assert.equal(migrationKind('f', '-- oidc-broker: ddl\nCREATE TABLE a (x INT64) PRIMARY KEY (x)'), 'ddl');
    assert.equal(migrationKind('f', 'SELECT 1 -- oidc-broker: dml'), 'ddl');
    assert.equal(migrationKind('f', '-- oidc-broker: dml please\nINSERT INTO a (x) VALUES (1)'), 'ddl');
    assert.equal(refusal(() => migrationKind('f.sql', '-- oidc-broker: dll\n')), 'f.sql: unknown kind "dll" on the first line (use ddl, dml, partitioned-dml)');
  });

  it('splits at a line comment that ends the file, keeps a /*/ comment open, and trims every kind of space', () => {
    assert.deepEqual(splitStatements('f', 'SELECT 1 -- done'), ['SELECT 1']);
    assert.deepEqual(splitStatements('f', 'SELECT 1 /*/ ; */'), ['SELECT 1']);
    assert.deepEqual(splitStatements('f', '\t SELECT 1 \n\t ;  \r\n SELECT 2\n'), ['SELECT 1', 'SELECT 2']);
    // Only strings end at a line end; a backquoted identifier that runs on is left for Spanner to judge.
    assert.deepEqual(splitStatements('f', 'CREATE TABLE `a\nb` (x INT64) PRIMARY KEY (x)'), ['CREATE TABLE `a\nb` (x INT64) PRIMARY KEY (x)']);
  });

  it('names the line where an unterminated string, identifier or comment starts', () => {
    assert.equal(refusal(() => splitStatements('0001_x.sql', "SELECT 1;\nSELECT 'a;\n")), '0001_x.sql: unterminated string starting on line 2');
    assert.equal(refusal(() => splitStatements('0001_x.sql', "SELECT 'a\rb'")), '0001_x.sql: unterminated string starting on line 1');
    assert.equal(refusal(() => splitStatements('0001_x.sql', 'SELECT 1;\n\nCREATE TABLE `a (x INT64)')), '0001_x.sql: unterminated quoted identifier starting on line 3');
    assert.equal(refusal(() => splitStatements('0001_x.sql', 'SELECT 1;\n\n\n/* open\n\n')), '0001_x.sql: unterminated /* comment on line 4');
  });

  it('tells DDL from DML by the first word only, naming the statement', () => {
    assert.doesNotThrow(() => parseMigrations([file('0001_a.sql', 'CREATE TABLE c (x INT64) PRIMARY KEY (x), INTERLEAVE IN PARENT p ON DELETE CASCADE')]));
    assert.doesNotThrow(() => parseMigrations([file('0001_a.sql', "-- oidc-broker: dml\nINSERT INTO notes (s) VALUES ('DROP TABLE a')")]));
    assert.equal(refusal(() => parseMigrations([file('0001_a.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x); DELETE FROM a WHERE true')])),
      '0001_a.sql, statement 2 is DML in a DDL file: start the file with "-- oidc-broker: dml" (or partitioned-dml)');
  });

  it('reads versions and descriptions from file names, refusing anything else that ends in .sql', () => {
    assert.deepEqual(parseMigrations([file('0007_create_users.sql', 'CREATE TABLE u (x INT64) PRIMARY KEY (x)')]).map((m) => [m.version, m.description]), [[7, 'create users']]);
    for (const name of ['v0001_a.sql', '0001_a.sql\\0002_b.sql']) assert.match(refusal(() => parseMigrations([file(name, 'SELECT 1')])), /NNNN_description\.sql/, name);
    for (const name of ['0000_a.sql', '99999999999999999999_a.sql']) assert.equal(refusal(() => parseMigrations([file(name, 'SELECT 1')])), `${name}: the version must be a positive integer`);
  });

  it('plans around a dirty version, names what changed by short checksums, and lets --allow-out-of-order pass a gap', () => {
    const plan = planMigrations(parseMigrations(files), [applied(1, '0001_create.sql'), applied(2, '0002_seed.sql', 'failed')], { allowOutOfOrder: false });
    assert.deepEqual([plan.applied.map((row) => row.version), plan.pending.map((m) => m.version), plan.dirty.map((row) => row.version)], [[1], [2, 3], [2]]);
    const changed = refusal(() => planMigrations(parseMigrations([file('0001_create.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x)', 'a'.repeat(64))]), [applied(1, '0001_create.sql', 'applied', 'b'.repeat(64))], { allowOutOfOrder: false }), 'migration_conflict');
    assert.equal(changed, `0001_create.sql changed after it was applied (checksum ${'b'.repeat(12)}… recorded, ${'a'.repeat(12)}… now): add a new migration instead`);
    assert.deepEqual(planMigrations(parseMigrations([files[0]!, files[2]!]), [], { allowOutOfOrder: true }).pending.map((m) => m.version), [1, 3]);
  });

  it('says how a dirty version failed, who left it, and both ways to resolve it', () => {
    const failed = { ...applied(2, '0002_seed.sql', 'failed'), pipelineId: '', jobId: '', projectPath: '' };
    assert.equal(dirtyError(failed).detail, 'version 2 (0002_seed.sql) is dirty: failed: boom; left by pipeline ? job ? of ? at 2026-01-01T00:00:00Z. '
      + 'resolve it with "oidc-broker spanner resolve 2 --rolled-back" (same --database) once no part of it remains applied (the next migrate runs it again), '
      + 'or "oidc-broker spanner resolve 2 --applied" once it is fully applied by hand');
  });

  it('locates a failure by the message when the committed count does not, or by the only statement there is', () => {
    const long = `CREATE TABLE ${'t'.repeat(70)} (x INT64) PRIMARY KEY (x)`;
    const group = parseMigrations([file('0001_a.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x)'), file('0002_b.sql', long)]);
    assert.deepEqual(locateFailure(group, 2, `Error parsing Spanner DDL statement: ${long.slice(0, 60)}…`), { version: 1, statement: 0 });
    assert.deepEqual(locateFailure(group, 5, `Error parsing Spanner DDL statement: ${long.slice(0, 60)}…`), { version: 1, statement: 0 });
    assert.equal(locateFailure(group, undefined, 'Deadline exceeded'), undefined);
    assert.deepEqual(locateFailure(group.slice(0, 1), undefined, 'Deadline exceeded'), { version: 0, statement: 0 });
  });

  it('without a located failure, marks the version the committed count ends in as failed', () => {
    const group = parseMigrations([
      file('0001_a.sql', 'CREATE TABLE a (x INT64) PRIMARY KEY (x); CREATE INDEX ia ON a (x)'),
      file('0002_b.sql', 'CREATE TABLE b (x INT64) PRIMARY KEY (x); CREATE INDEX ib ON b (x)'),
      file('0003_c.sql', 'CREATE TABLE c (x INT64) PRIMARY KEY (x)'),
    ]);
    assert.deepEqual(failedGroupOutcomes(group, 3, undefined), ['applied', 'failed', 'skipped']);
    assert.deepEqual(failedGroupOutcomes(group, 5, undefined), ['applied', 'applied', 'applied']);
  });

  it('takes the user from GITLAB_USER_LOGIN, then USER, else none', () => {
    assert.equal(pipelineFacts({ GITLAB_USER_LOGIN: 'alice', USER: 'dev' }, undefined).user, 'alice');
    assert.equal(pipelineFacts({}, undefined).user, '');
  });
});
