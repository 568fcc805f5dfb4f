/**
 * `oidc-broker doctor` and `oidc-broker serve`, run as the binary, on issuers a mesh consumer would refuse: doctor
 * fails with the reason, serve starts and warns with the reason in a JSON log line.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { CORE_POLICY } from './support/policies.js';
import { issuerFromDocsRecipe, withUriNameConstraint, withUuidArcExtension, type RecipeIssuer } from './linkerd-fixtures.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

let gitlab: StandInGitLab;
let dir: string;

async function configFor(name: string, issuer: RecipeIssuer): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  const linkerd = `{ issuerCertFile: "${issuer.files.issuerCertFile}", issuerKeyFile: "${issuer.files.issuerKeyFile}", trustAnchorsFile: "${issuer.files.trustAnchorsFile}" }`;
  await writeFile(path, [
    'server: { host: 127.0.0.1, port: 0, publicUrl: https://broker.test }',
    `gitlab:\n  - { issuer: "${gitlab.issuer}", audience: https://broker.test, apiTokenFile: "${join(dir, 'token')}" }`,
    `policy: { path: "${join(dir, 'policy')}", watch: false }`,
    `signing: { keysFile: "${join(dir, 'keys.json')}" }`,
    `linkerd: ${linkerd}`,
    '',
  ].join('\n'));
  return path;
}

function doctor(config: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'doctor', '--config', config], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Starts `serve`, waits until it listens, stops it; returns the JSON lines it logged before listening. */
function serveUntilListening(config: string): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('oidc-broker listening on')) child.kill('SIGTERM');
    });
    child.on('exit', () => {
      clearTimeout(timer);
      if (!stderr.includes('oidc-broker listening on')) return reject(new Error(`serve did not start:\n${stderr}`));
      resolve(stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>));
    });
  });
}

before(async () => {
  gitlab = await startGitLab();
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-consumers-'));
  await mkdir(join(dir, 'policy'));
  await writeFile(join(dir, 'policy', 'p.yaml'), CORE_POLICY);
  await writeFile(join(dir, 'token'), API_TOKEN);
  await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()));
});
after(async () => {
  await gitlab.close();
  await rm(dir, { recursive: true, force: true });
});

const refused = [
  { name: 'a URI name constraint', edit: withUriNameConstraint, reason: /has a URI name constraint \(permitted URI:cluster\.local\): Linkerd's proxy \(rustls-webpki 0\.103\.12/ },
  { name: 'an OID arc above 2^28', edit: withUuidArcExtension, reason: /carries OID 2\.25\.\d+\.1 with an arc above 2\^28: Go's crypto\/x509/ },
];

describe('oidc-broker doctor on the Linkerd issuer chain', () => {
  for (const { name, edit, reason } of refused) {
    it(`exits 1 and gives the reason for an issuer with ${name}`, async () => {
      const { code, output } = await doctor(await configFor(name.replace(/\W+/g, '-'), issuerFromDocsRecipe(edit)));
      assert.equal(code, 1, output);
      assert.match(output, /fail\s+linkerd CA\s+"CN=oidc-broker\.identity\.linkerd\.cluster\.local"/);
      assert.match(output, reason);
    });
  }

  it('exits 0 for the issuer docs/linkerd.md teaches', async () => {
    const { code, output } = await doctor(await configFor('recommended', issuerFromDocsRecipe()));
    assert.equal(code, 0, output);
    assert.match(output, /ok\s+linkerd CA\s+chain, CA, validity, key ok; nothing Linkerd's proxy or Go refuses\n/);
  });
});

describe('oidc-broker serve on the Linkerd issuer chain', () => {
  const warningsIn = (lines: Record<string, unknown>[]) =>
    lines.filter((line) => line.level === 'warn' && line.message === 'the Linkerd issuer chain will be refused by mesh consumers');

  it('starts, and logs a warning with the reason, for an issuer with a URI name constraint', async () => {
    const warnings = warningsIn(await serveUntilListening(await configFor('serve-uri', issuerFromDocsRecipe(withUriNameConstraint))));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]?.reason), refused[0]?.reason as RegExp);
  });

  it('starts without that warning for the issuer docs/linkerd.md teaches', async () => {
    assert.deepEqual(warningsIn(await serveUntilListening(await configFor('serve-good', issuerFromDocsRecipe()))), []);
  });
});
