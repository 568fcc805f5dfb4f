/**
 * Denials a developer can act on from a job log: one table, what was expected, 403 and 503 told apart with their codes,
 * nothing cut where the deciding part is, and policy test saying why a case failed. The CLI runs as a child process.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { differingParts, formatExplanation } from '../src/cli/denials.js';
import { runCli as run } from './support/cli-run.js';

/** Every word of `text` appears in `output` in order (a wrapped cell may be split across lines). */
function assertWordsInOrder(output: string, text: string): void {
  let from = 0;
  for (const word of text.split(/[\s/]+/).filter(Boolean)) {
    const at = output.indexOf(word, from);
    assert.ok(at >= 0, `"${word}" of "${text}" is missing from:\n${output}`);
    from = at + word.length;
  }
}

const CONFIG_URI = 'gitlab.example.com/platform/api-gateway//ci/deploy.gitlab-ci.yml@refs/heads/';
const LONG_DETAIL = 'merge request !42 needs 2 approvals from payments/reviewers excluding the author, the committers and the triggerer; has 1: carol (not counted: erin (author), frank (not in payments/reviewers))';
const EXPLANATION = {
  allowed: false, rule: null, code: 'approval_required',
  evaluations: [
    { rule: 'gateway-production', applies: false, requirements: [], grants: [],
      conditions: [{ name: 'ci_config_ref_uri', expected: `${CONFIG_URI}main`, actual: `${CONFIG_URI}feature`, ok: false }] },
    { rule: 'payments-production', applies: true, conditions: [{ name: 'environment', expected: 'production', actual: 'production', ok: true }],
      requirements: [{ name: 'mergeRequestApprovals', ok: false, detail: LONG_DETAIL }], grants: [{ name: 'token', ok: true, detail: 'audience a' }] },
  ],
};

describe('the denial table', () => {
  it('shows the part of a long expected value and the pipeline\'s that differs', () => {
    assert.deepEqual(differingParts(`${CONFIG_URI}main`, `${CONFIG_URI}feature`), ['…@refs/heads/main', '…@refs/heads/feature']);
    assert.deepEqual(differingParts('production', 'staging'), ['production', 'staging']);
    const [expected, actual] = differingParts('gitlab.example.com/platform/api-gateway//ci/deploy.gitlab-ci.yml@refs/heads/main', 'gitlab.example.com/platform/web-gateway//ci/deploy.gitlab-ci.yml@refs/heads/main');
    assert.match(expected, /api-gateway/);
    assert.match(actual, /web-gateway/);
  });

  it('keeps a long detail whole and says what a failed requirement needed', () => {
    const table = formatExplanation(EXPLANATION);
    assertWordsInOrder(table, LONG_DETAIL);
    assert.match(table, /mergeRequestApprovals\s+the merge request approved/);
    assert.match(table, /…@refs\/heads\/main\s+…@refs\/heads\/feature/);
    assert.doesNotMatch(table, /\bok\b/);
  });
});

describe('oidc-broker exchange against a broker that refuses', () => {
  let server: Server;
  let broker: string;
  let answer: [number, unknown] = [200, {}];
  before(async () => {
    server = createServer(async (request, response) => {
      for await (const _chunk of request) { /* drain */ }
      const [status, body] = request.url?.startsWith('/v1/explain') ? [200, EXPLANATION] : answer;
      response.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'application/problem+json' });
      response.end(JSON.stringify(body));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    broker = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  const exchange = (...extra: string[]) => run(['exchange', '--broker', broker, '--grant', 'token', '--out', join(tmpdir(), 'unused-out'), ...extra], { BROKER_ID_TOKEN: 'test.id.token' });

  it('a 403 is labelled a denial with its code and printed as one table', async () => {
    answer = [403, { code: 'approval_required', title: 'Required approvals are missing', detail: 'rule payments-production: approvals missing', requestId: 'req-1',
      reasons: [{ rule: 'payments-production', name: 'mergeRequestApprovals', detail: LONG_DETAIL }] }];
    const result = await exchange();
    assert.equal(result.code, 1);
    assert.match(result.stderr, /denied \(HTTP 403 approval_required\): rule payments-production: approvals missing \(request req-1\)/);
    assert.equal(result.stderr.match(/RULE/g)?.length, 1, result.stderr);
    assert.equal(result.stderr.match(/mergeRequestApprovals/g)?.length, 1, 'the same row printed twice');
    assertWordsInOrder(result.stderr, LONG_DETAIL);
  });

  it('a 503 is labelled an outage with its code, exit 3', async () => {
    answer = [503, { code: 'upstream_unavailable', title: 'A service the broker depends on is unavailable', detail: 'GitLab API timed out', requestId: 'req-2' }];
    const result = await exchange();
    assert.equal(result.code, 3);
    assert.match(result.stderr, /unavailable \(HTTP 503 upstream_unavailable\): GitLab API timed out/);
    assert.match(result.stderr, /retry/);
    assert.doesNotMatch(result.stderr, /denied/);
  });

  it('--json prints the refusal with the explanation, for scripts', async () => {
    answer = [403, { code: 'policy_denied', detail: 'no rule matches this pipeline' }];
    const result = await exchange('--json');
    assert.equal(result.code, 1);
    const printed = JSON.parse(result.stdout) as { ok: boolean; status: number; problem: { code: string }; explanation: { evaluations: unknown[] } };
    assert.equal(printed.ok, false);
    assert.equal(printed.problem.code, 'policy_denied');
    assert.equal(printed.explanation.evaluations.length, 2);
  });

  it('--json on success names the files and never prints the credential', async () => {
    answer = [200, { requestId: 'req-3', rule: 'payments-production', subject: { project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main', sha: 'a'.repeat(40), user_login: 'alice' }, approvals: {}, grants: { token: { token: 'secret.broker.token', expiresAt: '2030-01-01T00:00:00.000Z' } } }];
    const out = await mkdtemp(join(tmpdir(), 'oidc-broker-json-'));
    try {
      const result = await run(['exchange', '--broker', broker, '--grant', 'token', '--out', out, '--json'], { BROKER_ID_TOKEN: 'test.id.token' });
      assert.equal(result.code, 0, result.stderr);
      const printed = JSON.parse(result.stdout) as { ok: boolean; rule: string; granted: string[]; files: Record<string, string> };
      assert.deepEqual([printed.ok, printed.rule, printed.granted], [true, 'payments-production', ['token']]);
      assert.equal(printed.files.BROKER_TOKEN_FILE, join(out, 'broker-token'));
      assert.doesNotMatch(result.stdout + result.stderr, /secret\.broker\.token/);
      assert.equal(await readFile(join(out, 'broker-token'), 'utf8'), 'secret.broker.token');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('oidc-broker policy test and explain', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-cases-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const claims = { project_id: '20', project_path: 'payments/api', namespace_id: '10', namespace_path: 'payments', user_id: '30', user_login: 'alice',
    pipeline_id: '1', pipeline_source: 'push', job_id: '2', ref: 'main', ref_type: 'branch', ref_path: 'refs/heads/main', ref_protected: 'true',
    sha: '714a629c0b401fdce83e847fc9589983fc6f46bc', environment: 'production', ci_config_ref_uri: 'gitlab.example.com/payments/api//.gitlab-ci.yml@refs/heads/main' };

  it('says why a case failed (the broker\'s detail) and takes a single case file', async () => {
    const file = join(dir, 'other-audience.yaml');
    await writeFile(file, JSON.stringify({ cases: [{ name: 'a token for another audience', claims, grants: { token: { audience: 'https://other.internal' } }, expect: { rule: 'payments-deploy-production' } }] }));
    const result = await run(['policy', 'test', 'examples/policy', '--cases', file]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /FAIL .* code grant_not_allowed .*audience not allowed/);
    const json = await run(['policy', 'test', 'examples/policy', '--cases', file, '--json']);
    const printed = JSON.parse(json.stdout) as { failed: number; cases: { passed: boolean; detail: string; actual: string }[] };
    assert.equal(printed.failed, 1);
    assert.match(printed.cases[0]?.detail ?? '', /audience not allowed: https:\/\/other\.internal/);
  });

  it('stops at a case whose grants have the wrong shape, naming the file and the path', async () => {
    const file = join(dir, 'linkerd.yaml');
    await writeFile(file, JSON.stringify({ cases: [{ name: 'linkerd without a csr', claims, grants: { linkerd: {} }, expect: { rule: 'payments-deploy-production' } }] }));
    const result = await run(['policy', 'test', 'examples/policy', '--cases', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: linkerd\.yaml: cases\[0\]\.grants\.linkerd\.csr: /m);
  });

  it('flags unknown keys, unknown codes and misspelt rule names in case files', async () => {
    const cases = join(dir, 'typos');
    await mkdir(cases);
    await writeFile(join(cases, 'a.yaml'), [
      'cases:',
      '  - name: claim instead of claims',
      '    claim: { project_id: "20" }',
      '    expect: { code: policy_denied }',
      '  - name: misspelt code',
      '    claims: { project_id: "20" }',
      '    expect: { code: aproval_required }',
      '  - name: misspelt rule',
      '    claims: { project_id: "20" }',
      '    expect: { rule: payments-deploy-prod }',
      '',
    ].join('\n'));
    const result = await run(['policy', 'test', 'examples/policy', '--cases', cases]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /claim instead of claims.*unknown key claim \(did you mean claims\?\)/);
    assert.match(result.stderr, /aproval_required is not an error code \(did you mean approval_required\?\)/);
    assert.match(result.stderr, /payments-deploy-prod is not a rule of the policy \(did you mean payments-deploy-production\?\)/);
  });

  it('explain --json, and "audience not allowed" lists the allowed audiences', async () => {
    const file = join(dir, 'claims.json');
    await writeFile(file, JSON.stringify(claims));
    const result = await run(['policy', 'explain', 'examples/policy', '--claims', file, '--grants', '{"token":{"audience":"https://other.internal"}}', '--json']);
    assert.equal(result.code, 1);
    const printed = JSON.parse(result.stdout) as { allowed: boolean; code: string; detail: string };
    assert.equal(printed.allowed, false);
    assert.equal(printed.code, 'grant_not_allowed');
    assert.match(printed.detail, /audience not allowed: https:\/\/other\.internal; the rule allows https:\/\/deploy-api\.internal/);
  });
});
