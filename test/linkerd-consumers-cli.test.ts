/**
 * `oidc-broker doctor` and `oidc-broker serve` on issuers a mesh consumer would refuse: doctor fails with the reason,
 * serve starts and warns with the reason in a JSON log line. One run of each as the binary (exit code, output, log
 * format); the other cases go through the same functions in-process, which is much faster on a loaded machine.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { runDoctor } from '../src/cli/doctor.js';
import { loadConfig } from '../src/config/load.js';
import { createBroker } from '../src/main.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { CORE_POLICY } from './support/policies.js';
import { issuerFromDocsRecipe, withUriNameConstraint, withUuidArcExtension, type RecipeIssuer } from './linkerd-fixtures.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** Generous: the child returns as soon as it is done; this only bounds a hung one on a loaded machine. */
const CHILD_TIMEOUT_MS = 60_000;
const WARNING = 'the Linkerd issuer chain will be refused by mesh consumers';

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
    execFile(process.execPath, [BIN, 'doctor', '--config', config], { timeout: CHILD_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Starts `serve`, waits until it listens, stops it; returns the JSON lines it logged before listening. */
function serveUntilListening(config: string): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('"message":"listening"')) child.kill('SIGTERM');
    });
    child.on('exit', () => {
      clearTimeout(timer);
      if (!stderr.includes('"message":"listening"')) return reject(new Error(`serve did not start:\n${stderr}`));
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
  it('as the binary: exits 1 and prints the reason for an issuer with a URI name constraint', async () => {
    const { code, output } = await doctor(await configFor('doctor-uri', issuerFromDocsRecipe(withUriNameConstraint)));
    assert.equal(code, 1, output);
    assert.match(output, /fail\s+linkerd CA:\s+"CN=oidc-broker\.identity\.linkerd\.cluster\.local"/);
    assert.match(output, refused[0]?.reason as RegExp);
  });

  for (const { name, edit, reason } of refused) {
    it(`fails the linkerd CA check, with the reason, for an issuer with ${name}`, async () => {
      const { rows, exitCode } = await runDoctor(await configFor(`rows-${name.replace(/\W+/g, '-')}`, issuerFromDocsRecipe(edit)));
      assert.equal(exitCode, 1, JSON.stringify(rows));
      const failures = rows.filter(([status, check]) => status === 'fail' && check === 'linkerd CA');
      assert.equal(failures.length, 1, JSON.stringify(rows));
      assert.match(failures[0]?.[2] ?? '', reason);
    });
  }

  it('passes the issuer docs/linkerd.md teaches, with exit 0', async () => {
    const { rows, exitCode } = await runDoctor(await configFor('doctor-good', issuerFromDocsRecipe()));
    assert.equal(exitCode, 0, JSON.stringify(rows));
    assert.deepEqual(rows.filter(([, check]) => check === 'linkerd CA'), [['ok', 'linkerd CA', "chain, CA, validity, key ok; nothing Linkerd's proxy or Go refuses"]]);
  });
});

describe('oidc-broker serve on the Linkerd issuer chain', () => {
  it('as the binary: starts, and logs a JSON warning with the reason, for an issuer with a URI name constraint', async () => {
    const lines = await serveUntilListening(await configFor('serve-uri', issuerFromDocsRecipe(withUriNameConstraint)));
    const warnings = lines.filter((line) => line.level === 'warn' && line.message === WARNING);
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    assert.match(String(warnings[0]?.reason), refused[0]?.reason as RegExp);
  });

  for (const { name, issuer, expected } of [
    { name: 'an issuer with an OID arc above 2^28', issuer: () => issuerFromDocsRecipe(withUuidArcExtension), expected: [refused[1]?.reason] },
    { name: 'the issuer docs/linkerd.md teaches', issuer: () => issuerFromDocsRecipe(), expected: [] },
  ]) {
    it(`the broker's start-up warnings for ${name}`, async () => {
      const warned: unknown[] = [];
      const log = { error: () => {}, info: () => {}, warn: (message: string, meta?: Record<string, unknown>) => void (message === WARNING && warned.push(meta?.reason)) };
      const broker = await createBroker(await loadConfig(await configFor(`start-${expected.length}`, issuer())), { log });
      await broker.close();
      assert.equal(warned.length, expected.length, JSON.stringify(warned));
      expected.forEach((reason, index) => assert.match(String(warned[index]), reason as RegExp));
    });
  }
});
