/**
 * Grant lists from the CI templates reach the broker intact: each template's script, rendered the way GitLab's text
 * interpolation spells an array input, run by `sh` with the real CLI on PATH against a stand-in broker on loopback.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The job of a template after GitLab's text interpolation of `inputs` (arrays as the given text). */
async function renderJob(file: string, inputs: Record<string, string>): Promise<{ variables: Record<string, string>; script: string }> {
  let text = await readFile(join(ROOT, file), 'utf8');
  for (const [name, value] of Object.entries(inputs)) text = text.replaceAll(`$[[ inputs.${name} ]]`, value);
  text = text.replaceAll('$[[ component.version ]]', '1.2.3');
  const body = parseAllDocuments(text)[1]?.toJS() as Record<string, { variables: Record<string, string>; script?: string[]; before_script?: string[] }>;
  const job = Object.values(body)[0];
  assert.ok(job);
  return { variables: job.variables, script: (job.before_script ?? job.script ?? []).join('\n') };
}

// What GitLab's interpolation yields for an array input, depending on how the including file wrote it.
const SPELLINGS: [spelling: string, grants: Record<string, unknown>][] = [
  ['["token","linkerd"]', { token: {}, linkerd: 'csr' }],
  ['["token", "linkerd"]', { token: {}, linkerd: 'csr' }],
  ['[token, linkerd]', { token: {}, linkerd: 'csr' }],
  ['["token"]', { token: {} }],
  ['[token]', { token: {} }],
  ['["token=https://aud.example/ci", "google"]', { token: { audience: 'https://aud.example/ci' }, google: {} }],
  ['[token=https://aud.example/ci]', { token: { audience: 'https://aud.example/ci' } }],
];

describe('grant lists from the templates', () => {
  let server: Server;
  let broker: string;
  let dir: string;
  let pathWithCli: string;
  const bodies: { path: string; grants: Record<string, unknown> }[] = [];

  before(async () => {
    server = createServer(async (request, response) => {
      let body = '';
      for await (const chunk of request) body += String(chunk);
      bodies.push({ path: (request.url ?? '').split('?')[0] ?? '', grants: (JSON.parse(body) as { grants: Record<string, unknown> }).grants });
      const reply = request.url?.startsWith('/v1/explain')
        ? { allowed: true, rule: 'r', code: null, evaluations: [] }
        : { requestId: 'q', rule: 'r', subject: { project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main', sha: 'a'.repeat(40), user_login: 'alice' }, approvals: {}, grants: { token: { token: 'a.b.c', expiresAt: new Date().toISOString() } } };
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(reply));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    broker = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-grants-'));
    // The CLI image puts `oidc-broker` on PATH; here a two-line wrapper does.
    await writeFile(join(dir, 'oidc-broker'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    await chmod(join(dir, 'oidc-broker'), 0o755);
    pathWithCli = `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const templates: [file: string, endpoint: string][] = [
    ['templates/deploy-gate/template.yml', '/v1/explain'],
    ['templates/login/template.yml', '/v1/exchange'],
  ];
  for (const [file, endpoint] of templates) {
    for (const [spelling, expected] of SPELLINGS) {
      it(`${file} with grants ${spelling} asks for ${Object.keys(expected).join(' and ')}`, async () => {
        const job = await renderJob(file, { grants: spelling, broker_url: broker, audience: broker, as: 'job', stage: 'deploy', image: 'img', environment: 'production' });
        bodies.length = 0;
        const result = await run('/bin/sh', ['-c', job.script], { ...process.env, ...job.variables, PATH: pathWithCli, BROKER_ID_TOKEN: 'test.id.token', TMPDIR: dir });
        assert.equal(result.code, 0, result.stderr);
        const sent = bodies.find((body) => body.path === endpoint);
        assert.ok(sent, `nothing sent to ${endpoint}`);
        assert.deepEqual(Object.keys(sent.grants).sort(), Object.keys(expected).sort());
        for (const [kind, value] of Object.entries(expected)) {
          if (value === 'csr') assert.match(String((sent.grants[kind] as { csr: string }).csr), /BEGIN CERTIFICATE REQUEST/);
          else assert.deepEqual(sent.grants[kind], value);
        }
      });
    }
  }

  it('--grants-json names itself and exits 2 for text that is not a list of grants', async () => {
    for (const bad of ['{bad', '{"token":{}}', '["token", 3]']) {
      const result = await run(process.execPath, [BIN, 'gate', '--broker', broker, '--grants-json', bad], { ...process.env, BROKER_ID_TOKEN: 'test.id.token' });
      assert.equal(result.code, 2, `${bad}: ${result.stderr}`);
      assert.match(result.stderr, /--grants-json/);
    }
  });

  it('a run-together list ("tokenlinkerd") is refused as an unknown grant, not sent', async () => {
    bodies.length = 0;
    const result = await run(process.execPath, [BIN, 'gate', '--broker', broker, '--grants-json', '["tokenlinkerd"]'], { ...process.env, BROKER_ID_TOKEN: 'test.id.token' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown grant "tokenlinkerd"/);
    assert.equal(bodies.length, 0);
  });
});
