/**
 * Hand-written facts are untrusted input: `policy test` case files and `policy explain --approvals` files of the
 * wrong shape are refused with the file and the JSON path of the problem, never read half-way or shown as `undefined`.
 */
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { approvalFactsFrom, readPolicyCases } from '../src/app/policy-tools.js';
import { isBrokerError } from '../src/core/errors.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const POLICY = new URL('../../examples/policy', import.meta.url).pathname;
const CLAIMS = { project_id: '20', project_path: 'payments/api', namespace_id: '10', namespace_path: 'payments', user_id: '30', user_login: 'alice', pipeline_id: '1', pipeline_source: 'push', job_id: '2', ref: 'main', ref_type: 'branch', ref_path: 'refs/heads/main', ref_protected: 'true', sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', environment: 'production' };
const USER = { id: 2, username: 'bob' };
const DEPLOYMENT = { deploymentId: 900, jobId: '2', environment: 'production', approvals: [{ user: USER, status: 'approved', at: '2025-06-01T11:00:00Z' }] };

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(isBrokerError(error), String(error));
    assert.equal(error.code, 'invalid_request');
    assert.ok(!error.detail.includes('undefined'), error.detail);
    return error.detail;
  }
  return assert.fail('accepted');
}

describe('approval facts files', () => {
  it('reads a well-formed file, ids as strings and group members as sets', () => {
    const facts = approvalFactsFrom({ deployment: DEPLOYMENT, groupMembers: { 'payments/release': [2, '3'] } }, 'facts.yaml');
    assert.equal(facts.deployment?.approvals[0]?.user.id, '2');
    assert.equal(facts.deployment?.approvals[0]?.user.bot, false);
    assert.deepEqual([...(facts.groupMembers?.get('payments/release') ?? [])], ['2', '3']);
  });

  const wrong: Array<{ name: string; value: unknown; detail: RegExp }> = [
    { name: 'a list where an object belongs', value: [], detail: /^facts\.yaml: \(top level\): / },
    { name: 'a user without a username', value: { deployment: { ...DEPLOYMENT, approvals: [{ user: { id: 2 }, status: 'approved', at: '2025-06-01T11:00:00Z' }] } }, detail: /^facts\.yaml: deployment\.approvals\[0\]\.user\.username: is missing$/ },
    { name: 'an unknown approval status', value: { deployment: { ...DEPLOYMENT, approvals: [{ user: USER, status: 'maybe', at: '2025-06-01T11:00:00Z' }] } }, detail: /^facts\.yaml: deployment\.approvals\[0\]\.status: / },
    { name: 'a time that is not one', value: { deployment: { ...DEPLOYMENT, approvals: [{ user: USER, status: 'approved', at: 'yesterday' }] } }, detail: /^facts\.yaml: deployment\.approvals\[0\]\.at: must be an ISO 8601 time$/ },
    { name: 'group members that are not a list of ids', value: { groupMembers: { 'payments/release': 'bob' } }, detail: /^facts\.yaml: groupMembers\.payments\/release: / },
    { name: 'a misspelt fact', value: { deploymnet: DEPLOYMENT }, detail: /^facts\.yaml: \(top level\): .*deploymnet/ },
  ];
  for (const { name, value, detail } of wrong) {
    it(`refuses ${name}, naming the file and the path`, () => {
      assert.match(refusal(() => approvalFactsFrom(value, 'facts.yaml')), detail);
    });
  }
});

describe('policy test case files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'policy-cases-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function casesWith(file: string, content: unknown): Promise<string> {
    const casesDir = await mkdtemp(join(dir, 'cases-'));
    await writeFile(join(casesDir, file), JSON.stringify(content));
    return casesDir;
  }

  it('reads approvals in a case as the server would see them', async () => {
    const cases = await readPolicyCases(await casesWith('ok.json', { cases: [{ name: 'ok', claims: CLAIMS, approvals: { deployment: DEPLOYMENT }, expect: { rule: 'x' } }] }));
    assert.equal(cases[0]?.input.approvals?.deployment?.jobId, '2');
  });

  const wrong: Array<{ name: string; content: unknown; detail: RegExp }> = [
    { name: 'no cases list', content: { cases: 'all of them' }, detail: /^bad\.json: cases: / },
    { name: 'a misspelt cases list', content: { case: [] }, detail: /^bad\.json: (?:\(top level\)|cases): / },
    { name: 'a case without a name', content: { cases: [{ claims: CLAIMS, expect: { rule: 'x' } }] }, detail: /^bad\.json: cases\[0\]\.name: / },
    { name: 'both expectations', content: { cases: [{ name: 'n', expect: { rule: 'x', code: 'policy_denied' } }] }, detail: /^bad\.json: cases\[0\]\.expect: needs exactly one of rule or code$/ },
    { name: 'approvals of the wrong shape', content: { cases: [{ name: 'n', approvals: { mergeRequest: { iid: 'forty-two' } }, expect: { rule: 'x' } }] }, detail: /^bad\.json: cases\[0\]\.approvals\.mergeRequest\.iid: / },
    { name: 'grants of the wrong shape', content: { cases: [{ name: 'ok', claims: CLAIMS, expect: { rule: 'x' } }, { name: 'n', grants: { token: { audience: 42 } }, expect: { rule: 'x' } }] }, detail: /^bad\.json: cases\[1\]\.grants\.token\.audience: [^[{]+$/ },
    { name: 'a grant kind that does not exist', content: { cases: [{ name: 'n', grants: { tokn: {} }, expect: { rule: 'x' } }] }, detail: /^bad\.json: cases\[0\]\.grants(?:\.tokn)?: [^[{]+$/ },
  ];
  for (const { name, content, detail } of wrong) {
    it(`refuses ${name}, naming the file and the path`, async () => {
      const casesDir = await casesWith('bad.json', content);
      const error: unknown = await readPolicyCases(casesDir).then(() => assert.fail('accepted'), (reason: unknown) => reason);
      assert.ok(isBrokerError(error), String(error));
      assert.match(error.detail, detail);
    });
  }

  it('policy explain --grants of the wrong shape exits 2 naming the flag and the path', async () => {
    const claims = join(dir, 'claims-for-grants.json');
    await writeFile(claims, JSON.stringify(CLAIMS));
    const result = await promisify(execFile)(process.execPath, [CLI, 'policy', 'explain', POLICY, '--claims', claims, '--grants', '{"token":{"audience":42}}'])
      .then(() => assert.fail('exit 0'), (error: { code: number; stderr: string }) => error);
    assert.equal(result.code, 2);
    assert.match(result.stderr.trim(), /^error: --grants: token\.audience: [^[{\n]+$/);
  });

  it('policy explain --approvals with a wrong file exits 2 naming it and the path', async () => {
    const claims = join(dir, 'claims.json');
    const approvals = join(dir, 'approvals.json');
    await writeFile(claims, JSON.stringify(CLAIMS));
    await writeFile(approvals, JSON.stringify({ deployment: { ...DEPLOYMENT, jobId: null } }));
    const result = await promisify(execFile)(process.execPath, [CLI, 'policy', 'explain', POLICY, '--claims', claims, '--approvals', approvals])
      .then(() => assert.fail('exit 0'), (error: { code: number; stderr: string }) => error);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n')[0]?.startsWith(`error: ${approvals}: deployment.jobId: `), true, result.stderr);
  });
});
