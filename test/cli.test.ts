/** The `oidc-broker` binary as a user runs it: help, policy check/test/explain, and dev mode end to end. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, spawnCli } from './support/cli-run.js';
import { freePort } from './support/free-port.js';

const run = (args: string[]) => runCli(args, {}, { timeoutMs: 60_000 });

describe('oidc-broker policy', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-cli-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('--help lists the commands', async () => {
    const result = await run(['--help']);
    assert.equal(result.code, 0);
    for (const command of ['serve', 'dev', 'policy']) assert.match(result.stdout, new RegExp(`\\b${command}\\b`));
  });

  it('check passes the example policy with exit 0', async () => {
    const result = await run(['policy', 'check', 'examples/policy']);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /2 rules, \d+ warnings, 0 errors/);
  });

  it('check exits 1 and names the problem for an invalid policy', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'version: 1\nrules:\n  - name: r\n    when: { ref_path: { regex: "(?=x)" } }\n    grant: { token: { audiences: [a] } }\n');
    const result = await run(['policy', 'check', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /rules\.0\.when\.ref_path: lookaround is not allowed/);
  });

  it('check exits 1 for approval bypass by shadowing, and 0 with --allow-shadowing', async () => {
    const file = join(dir, 'shadowing.yaml');
    await writeFile(file, [
      'version: 1',
      'rules:',
      '  - name: payments-any',
      '    when: { project_id: "20" }',
      '    grant: { token: { audiences: [https://deploy.internal] } }',
      '  - name: payments-production',
      '    when: { project_id: "20", environment: production }',
      '    require: { deploymentApprovals: { min: 2 } }',
      '    grant: { token: { audiences: [https://deploy.internal] } }',
      '',
    ].join('\n'));
    const refused = await run(['policy', 'check', file]);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, /^error: rule payments-production: rule payments-any comes first, .*can be bypassed$/m);
    assert.match(refused.stdout, /2 rules, \d+ warnings, 1 errors/);
    const accepted = await run(['policy', 'check', file, '--allow-shadowing']);
    assert.equal(accepted.code, 0, accepted.stdout);
    assert.match(accepted.stdout, /^accepted: rule payments-production: rule payments-any comes first/m);
    assert.match(accepted.stdout, /2 rules, \d+ warnings, 0 errors/);
  });

  it('check exits 1 for duplicate YAML keys', async () => {
    const file = join(dir, 'dup.yaml');
    await writeFile(file, 'version: 1\nversion: 1\nrules: []\n');
    const result = await run(['policy', 'check', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /YAML/);
  });

  it('test runs the example cases and reports them', async () => {
    const result = await run(['policy', 'test', 'examples/policy', '--cases', 'examples/policy-cases']);
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /4 passed, 0 failed/);
  });

  it('test exits 1 when a case expects the wrong outcome', async () => {
    const cases = join(dir, 'cases');
    await rm(cases, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(cases));
    await writeFile(join(cases, 'wrong.yaml'), 'cases:\n  - name: wrong\n    claims: { project_id: "999" }\n    expect: { rule: payments-deploy-production }\n');
    const result = await run(['policy', 'test', 'examples/policy', '--cases', cases]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /FAIL/);
  });

  it('explain prints every condition and the decision', async () => {
    const claims = join(dir, 'claims.json');
    await writeFile(claims, JSON.stringify({ project_id: '20', project_path: 'payments/api', namespace_id: '10', namespace_path: 'payments', user_id: '1', user_login: 'a', pipeline_id: '1', pipeline_source: 'push', job_id: '1', ref: 'main', ref_type: 'branch', ref_path: 'refs/heads/main', ref_protected: 'true', sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', environment: 'staging' }));
    const result = await run(['policy', 'explain', 'examples/policy', '--claims', claims]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /x\s+environment\s+production\s+staging/);
    assert.match(result.stdout, /denied: policy_denied/);
  });

  it('exits 2 on a usage error', async () => {
    assert.equal((await run(['policy', 'test', 'examples/policy'])).code, 2);
    assert.equal((await run(['no-such-command'])).code, 2);
  });
});

describe('oidc-broker dev', () => {
  it('serves a development issuer; a dev token exchanges once and is then replayed', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const dev = spawnCli(['dev', '--port', String(port)]);
    try {
      // On a loaded machine the dev broker's key and CA generation alone can take several seconds.
      await dev.printed('DEVELOPMENT MODE', 100_000);
      const output = dev.stdout;
      assert.match(output, /DEVELOPMENT MODE/);
      assert.match(output, /dev token/);
      const token = (await run(['dev', 'token', '--broker', `http://127.0.0.1:${port}`])).stdout.trim();
      assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      const exchange = () => fetch(`http://127.0.0.1:${port}/v1/exchange`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"grants":{"token":{}}}' });
      const first = await exchange();
      assert.equal(first.status, 200, await first.clone().text());
      assert.equal(((await first.json()) as { rule: string }).rule, 'payments-deploy-production');
      assert.equal((await exchange()).status, 409);
      const staging = (await run(['dev', 'token', '--broker', `http://127.0.0.1:${port}`, '--claim', 'environment=staging'])).stdout.trim();
      const explained = await fetch(`http://127.0.0.1:${port}/v1/explain`, { method: 'POST', headers: { authorization: `Bearer ${staging}`, 'content-type': 'application/json' }, body: '{"grants":{"token":{}}}' });
      assert.equal(((await explained.json()) as { allowed: boolean }).allowed, false);
    } finally {
      dev.stop();
    }
  });

  it('dev token says clearly when no dev broker is running', async () => {
    const port = await freePort();
    const result = await run(['dev', 'token', '--broker', `http://127.0.0.1:${port}`]);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /no dev broker/);
  });
});
