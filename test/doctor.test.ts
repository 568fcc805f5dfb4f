/** `oidc-broker doctor`: each preflight check reports, and the exit code follows the worst finding. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { runDoctor } from '../src/cli/doctor.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { CORE_POLICY } from './support/policies.js';

let gitlab: StandInGitLab;
let dir: string;

async function writeConfig(issuer: string, policy = CORE_POLICY): Promise<string> {
  await writeFile(join(dir, 'policy', 'p.yaml'), policy);
  const path = join(dir, 'broker.yaml');
  await writeFile(path, `server: { publicUrl: https://broker.test }\ngitlab:\n  - { issuer: "${issuer}", audience: https://broker.test, apiTokenFile: token }\npolicy: { path: policy }\nsigning: { keysFile: keys.json }\n`);
  return path;
}

before(async () => {
  gitlab = await startGitLab();
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-doctor-'));
  await mkdir(join(dir, 'policy'));
  await writeFile(join(dir, 'token'), API_TOKEN);
  await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()));
});
after(async () => {
  await gitlab.close();
  await rm(dir, { recursive: true, force: true });
});

describe('doctor', () => {
  it('passes a healthy setup with exit 0, checking the issuer keys and the token scopes', async () => {
    const { rows, exitCode } = await runDoctor(await writeConfig(gitlab.issuer));
    assert.equal(exitCode, 0, JSON.stringify(rows));
    assert.ok(rows.some(([status, check]) => status === 'ok' && check.startsWith('issuer ')));
    assert.ok(rows.some(([status, , detail]) => status === 'ok' && detail.includes('read_api')));
  });

  it('fails with exit 1 on a policy that does not load', async () => {
    const { rows, exitCode } = await runDoctor(await writeConfig(gitlab.issuer, 'version: 1\nrules: [{}]\n'));
    assert.equal(exitCode, 1);
    assert.ok(rows.some(([status, check]) => status === 'fail' && check === 'policy'));
  });

  it('reports an unreachable issuer with exit 3', async () => {
    const { rows, exitCode } = await runDoctor(await writeConfig('http://127.0.0.1:9'));
    assert.equal(exitCode, 3, JSON.stringify(rows));
  });

  it('fails with exit 2 (a configuration error) on a config that does not parse', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, 'server: {}\n');
    assert.equal((await runDoctor(path)).exitCode, 2);
  });

  it('fails with exit 2 on a policy granting a kind the config cannot mint, naming the rule and the section', async () => {
    const policy = `version: 1\nrules:\n  - name: payments-mesh\n    when: { project_id: "20" }\n    grant: { linkerd: { serviceAccount: deploy, namespace: ci } }\n`;
    const { rows, exitCode } = await runDoctor(await writeConfig(gitlab.issuer, policy));
    assert.equal(exitCode, 2, JSON.stringify(rows));
    assert.ok(rows.some(([status, check, detail]) => status === 'fail' && check === 'policy rule payments-mesh' && /grants linkerd, but the config has no linkerd section/.test(detail)), JSON.stringify(rows));
  });

  it('fails with exit 2 on a config section this version would refuse at start', async () => {
    const path = await writeConfig(gitlab.issuer);
    await writeFile(path, `${await readFile(path, 'utf8')}replay: { store: redis, url: "redis://127.0.0.1:1" }\n`);
    const { rows, exitCode } = await runDoctor(path);
    assert.equal(exitCode, 2, JSON.stringify(rows));
    assert.ok(rows.some(([status, check, detail]) => status === 'fail' && check === 'adapters' && /replay\.store redis/.test(detail)), JSON.stringify(rows));
  });
});
