/**
 * CLI conventions through the real entry point (a child process): --version, option values validated and named,
 * "file not found: PATH", exit codes, dev token --ref/--tag, keys generate/rotate, completion scripts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JWK } from 'jose';
import { createJwtSigner } from '../src/adapters/jwt/signer.js';
import { checkSecretFilePermissions } from '../src/cli/doctor-files.js';
import type { BrokerConfig } from '../src/config/schema.js';
import { REPO_ROOT as ROOT, runCli as run, type CliRun as Run } from './support/cli-run.js';

function shell(program: string, script: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(program, ['-c', script], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-conventions-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('oidc-broker conventions', () => {
  it('--version prints package.json\'s version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = await run(['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout.trim(), version);
  });

  const invalid: [args: string[], option: string][] = [
    [['dev', '--port', 'abc'], '--port'],
    [['dev', '--port', '70000'], '--port'],
    [['--log-level', 'loud', 'policy', 'check', 'examples/policy'], '--log-level'],
    [['policy', 'explain', 'examples/policy', '--claims', 'x.json', '--job-status', 'bogus'], '--job-status'],
    [['policy', 'explain', 'examples/policy', '--claims', 'x.json', '--grants', '{bad'], '--grants'],
    [['gate', '--broker', 'http://127.0.0.1:1', '--grants-json', '{bad'], '--grants-json'],
    [['exchange', '--broker', 'http://127.0.0.1:1', '--grant', 'token', '--timeout', 'soon'], '--timeout'],
  ];
  for (const [args, option] of invalid) {
    it(`${args.join(' ')}: exit 2, naming ${option}`, async () => {
      const result = await run(args, { BROKER_ID_TOKEN: 'a.b.c' });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`option '${option} <`));
    });
  }

  const missing: [args: string[], path: string][] = [
    [['policy', 'check', 'no-such-policy.yaml'], 'no-such-policy.yaml'],
    [['policy', 'explain', 'examples/policy', '--claims', 'no-such-claims.json'], 'no-such-claims.json'],
    [['policy', 'test', 'examples/policy', '--cases', 'no-such-cases'], 'no-such-cases'],
    [['serve', '--config', 'no-such-broker.yaml'], 'no-such-broker.yaml'],
    [['keys', 'rotate', '--file', 'no-such-keys.json'], 'no-such-keys.json'],
  ];
  for (const [args, path] of missing) {
    it(`${args.slice(0, 2).join(' ')} with a missing file: "file not found: ${path}", exit 2, no raw ENOENT`, async () => {
      const result = await run(args);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`file not found: ${path.replace('.', '\\.')}`));
      assert.doesNotMatch(result.stderr, /ENOENT/);
    });
  }

  it('dev --help shows --port', async () => {
    const result = await run(['dev', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--port <n>/);
  });
});

describe('dev token --ref / --tag', () => {
  it('sets ref, ref_type, ref_path, sub and ci_config_ref_uri consistently; --claim still wins', async () => {
    const posted: Record<string, unknown>[] = [];
    const server = createServer(async (request, response) => {
      let body = '';
      for await (const chunk of request) body += String(chunk);
      posted.push((JSON.parse(body) as { claims: Record<string, unknown> }).claims);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"token":"a.b.c"}');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const broker = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      assert.equal((await run(['dev', 'token', '--broker', broker, '--tag', 'v1.2.0'])).code, 0);
      assert.equal((await run(['dev', 'token', '--broker', broker, '--ref', 'feature/x', '--claim', 'project_path=web/app'])).code, 0);
      assert.equal((await run(['dev', 'token', '--broker', broker, '--ref', 'a', '--tag', 'b'])).code, 2);
    } finally {
      server.close();
    }
    assert.deepEqual(posted[0], {
      ref: 'v1.2.0', ref_type: 'tag', ref_path: 'refs/tags/v1.2.0', sub: 'project_path:payments/api:ref_type:tag:ref:v1.2.0',
      ci_config_ref_uri: 'gitlab.example.com/payments/api//.gitlab-ci.yml@refs/tags/v1.2.0',
    });
    assert.equal(posted[1]?.ref_path, 'refs/heads/feature/x');
    assert.equal(posted[1]?.sub, 'project_path:web/app:ref_type:branch:ref:feature/x');
    assert.equal(posted[1]?.project_path, 'web/app');
    assert.equal(posted.length, 2);
  });
});

describe('keys generate and rotate', () => {
  it('generate writes a 0600 ES256 JWKS with a kid, and refuses to overwrite it', async () => {
    const file = join(dir, 'signing.jwks.json');
    const result = await run(['keys', 'generate', '--out', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const { keys } = JSON.parse(await readFile(file, 'utf8')) as { keys: JWK[] };
    assert.equal(keys.length, 1);
    assert.equal(keys[0]?.alg, 'ES256');
    assert.equal(keys[0]?.crv, 'P-256');
    assert.ok(keys[0]?.kid);
    assert.match(result.stdout, new RegExp(String(keys[0]?.kid)));
    await createJwtSigner('https://broker.test', keys);
    const again = await run(['keys', 'generate', '--out', file]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /keys rotate/);
  });

  it('rotate puts a new signing key first and keeps the old one published', async () => {
    const file = join(dir, 'rotate.jwks.json');
    assert.equal((await run(['keys', 'generate', '--out', file])).code, 0);
    const before = (JSON.parse(await readFile(file, 'utf8')) as { keys: JWK[] }).keys;
    const result = await run(['keys', 'rotate', '--file', file]);
    assert.equal(result.code, 0, result.stderr);
    const after = (JSON.parse(await readFile(file, 'utf8')) as { keys: JWK[] }).keys;
    assert.equal(after.length, 2);
    assert.notEqual(after[0]?.kid, before[0]?.kid);
    assert.deepEqual(after[1], before[0]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const signer = await createJwtSigner('https://broker.test', after);
    assert.deepEqual(signer.publicJwks(new Date()).keys.map((key) => String(key.kid)).sort(), after.map((key) => String(key.kid)).sort());
  });
});

describe('doctor: secret file permissions', () => {
  it('warns about a private key file other users can read, and passes a 0600 one', async () => {
    const open = join(dir, 'open.jwks.json');
    const closed = join(dir, 'closed-token');
    await writeFile(open, '{}');
    await chmod(open, 0o644);
    await writeFile(closed, 'x', { mode: 0o600 });
    const config = { signing: { keysFile: open }, linkerd: undefined, gitlab: [{ issuer: 'https://gitlab.test', apiTokenFile: closed }] } as unknown as BrokerConfig;
    const rows = await checkSecretFilePermissions(config);
    assert.deepEqual(rows.map(([status]) => status), ['warn', 'ok']);
    assert.match(rows[0]?.[2] ?? '', /0644.*readable by other users.*chmod 600/);
  });
});

describe('completion', () => {
  for (const [program, setup] of [['bash', ''], ['zsh', 'autoload -U compinit && compinit -u; setopt ksharrays;']] as const) {
    it(`${program}: completes commands, subcommands and options`, async () => {
      const script = join(dir, `completion.${program}`);
      const generated = await run(['completion', program]);
      assert.equal(generated.code, 0, generated.stderr);
      await writeFile(script, generated.stdout);
      const complete = (words: string[]) => shell(program, `${setup} source ${script}; COMP_WORDS=(${words.map((word) => `"${word}"`).join(' ')}); COMP_CWORD=${words.length - 1}; _oidc_broker; echo "\${COMPREPLY[@]}"`);
      assert.match((await complete(['oidc-broker', 'ke'])).stdout, /\bkeys\b/);
      const keys = (await complete(['oidc-broker', 'keys', ''])).stdout;
      assert.match(keys, /\bgenerate\b/);
      assert.match(keys, /\brotate\b/);
      assert.match((await complete(['oidc-broker', 'exchange', '--grants'])).stdout, /--grants-json/);
    });
  }
  it('refuses an unknown shell with exit 2', async () => {
    assert.equal((await run(['completion', 'fish'])).code, 2);
  });
});
