/**
 * The delivery path as a user takes it: `npm pack`, install the tarball into an empty prefix, and run the installed
 * `oidc-broker` (--version, a dev broker, an exchange). Proves `files` in package.json ships everything the CLI needs.
 * Also: every file the Dockerfile copies exists and is not excluded from the build context.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT as ROOT, runCli, spawnCli } from './support/cli-run.js';
import { freePort } from './support/free-port.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const exec = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('the npm pack tarball, installed into an empty prefix', () => {
  let dir: string;
  let bin: string;
  let packed: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-pack-'));
    // `npm test` has built dist/ already; --ignore-scripts packs it as it is instead of rebuilding.
    const { stdout } = await exec(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: 60_000 });
    const [report] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(report);
    packed = report.files.map((file) => file.path);
    const prefix = join(dir, 'prefix');
    // Dependencies come from the npm cache (or the registry when the cache lacks one); no lifecycle scripts run.
    await exec(NPM, ['install', '--global', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--omit=dev', '--no-audit', '--no-fund', join(dir, report.filename)],
      { cwd: dir, timeout: 180_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
    bin = join(prefix, 'bin', 'oidc-broker');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('ships the compiled CLI, the example policy, the schemas and the CI templates, and no tests or sources', () => {
    for (const path of ['dist/src/cli/main.js', 'examples/policy/dev.yaml', 'schemas/policy.schema.json', 'templates/login/template.yml', 'templates/deploy-gate/template.yml', 'ci-templates/oidc-broker.gitlab-ci.yml', 'package.json', 'README.md']) {
      assert.ok(packed.includes(path), `${path} is not in the tarball`);
    }
    assert.deepEqual(packed.filter((path) => path.startsWith('dist/test/') || path.startsWith('src/') || path.endsWith('.tsbuildinfo')), []);
  });

  it('installs an executable oidc-broker that prints package.json\'s version', async () => {
    assert.ok(((await stat(bin)).mode & 0o111) !== 0, 'oidc-broker is not executable');
    const { code, stdout, stderr } = await runCli(['--version'], {}, { bin, cwd: dir });
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), VERSION);
  });

  it('runs a dev broker and an exchange from the installed package alone', async () => {
    const port = await freePort();
    const broker = `http://127.0.0.1:${port}`;
    const dev = spawnCli(['dev', '--port', String(port)], { bin, cwd: dir });
    try {
      await dev.printed('DEVELOPMENT MODE', 30_000);
      assert.match(dev.stdout + dev.stderr, /DEVELOPMENT MODE/);
      const token = await runCli(['dev', 'token', '--broker', broker], {}, { bin, cwd: dir });
      assert.equal(token.code, 0, token.stderr);
      const out = join(dir, 'credentials');
      const exchanged = await runCli(['exchange', '--broker', broker, '--grant', 'token', '--out', out], { BROKER_ID_TOKEN: token.stdout.trim() }, { bin, cwd: dir });
      assert.equal(exchanged.code, 0, exchanged.stderr);
      assert.match(exchanged.stderr, /granted token/);
      assert.match(await readFile(join(out, 'broker-token'), 'utf8'), /^[\w-]+\.[\w-]+\.[\w-]+$/);
    } finally {
      dev.stop();
    }
  });
});

/** `COPY a b dest/` sources of the Dockerfile, ignoring copies from another stage. */
function copiedPaths(dockerfile: string): string[] {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  return joined.split('\n').filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1).filter((word) => !word.startsWith('--')));
}

/** Whether .dockerignore (a `*` then `!path` allow-list) lets a path into the build context. */
function allowedByDockerignore(rules: string[], path: string): boolean {
  let allowed = true;
  for (const rule of rules) {
    const negated = rule.startsWith('!');
    const pattern = (negated ? rule.slice(1) : rule).replace(/\/$/, '');
    if (pattern === '*' || pattern === path.replace(/\/$/, '') || path.startsWith(`${pattern}/`)) allowed = negated;
  }
  return allowed;
}

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const ignoreRules = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));

  it('copies only files that exist and that .dockerignore lets into the context', () => {
    const paths = copiedPaths(dockerfile);
    assert.ok(paths.length >= 5, `found only ${paths.join(', ')}`);
    for (const path of paths) {
      assert.ok(existsSync(join(ROOT, path)), `COPY ${path}: no such file in the repository`);
      assert.ok(allowedByDockerignore(ignoreRules, path), `COPY ${path}: excluded by .dockerignore`);
    }
  });

  it('is multi-stage, on an exact Node 20 tag, runs as a non-root user and has no ENTRYPOINT (GitLab needs a shell)', () => {
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gim)].map((match) => match[1] as string);
    assert.ok(bases.length >= 2, 'expected a build stage and a runtime stage');
    for (const base of bases) assert.match(base, /^node:20\.\d+\.\d+-bookworm-slim$/);
    assert.match(dockerfile, /^USER\s+(node|[1-9]\d*)\s*$/m);
    assert.doesNotMatch(dockerfile, /^ENTRYPOINT/m);
  });

  it('names no source the tests can see is missing from a clean checkout (no dist/, no node_modules/)', () => {
    for (const path of copiedPaths(dockerfile)) assert.doesNotMatch(path, /^(dist|node_modules)(\/|$)/);
  });
});
