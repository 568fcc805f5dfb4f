/** `oidc-broker serve` refuses configurations it cannot honour, with exit 2 (a configuration error, not an outage). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
let dir: string;

let keys: string;

async function serve(configText: string, policy: string): Promise<{ code: number; stderr: string }> {
  const home = await mkdtemp(join(dir, 'case-'));
  await mkdir(join(home, 'policy'));
  await writeFile(join(home, 'policy', 'p.yaml'), policy);
  await writeFile(join(home, 'keys.json'), keys);
  await writeFile(join(home, 'broker.yaml'), configText);
  try {
    await promisify(execFile)(process.execPath, [BIN, 'serve', '--config', join(home, 'broker.yaml')], { timeout: 20_000 });
    return { code: 0, stderr: '' };
  } catch (err) {
    const failed = err as { code?: number; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stderr: failed.stderr ?? '' };
  }
}

const CONFIG = `server: { host: 127.0.0.1, port: 0, publicUrl: https://broker.test }
gitlab:
  - { issuer: "http://127.0.0.1:9", audience: https://broker.test }
policy: { path: policy, watch: false }
signing: { keysFile: keys.json }
`;
const MESH_POLICY = 'version: 1\nrules:\n  - name: payments-mesh\n    when: { project_id: "20" }\n    grant: { linkerd: { serviceAccount: deploy, namespace: ci } }\n';
const TOKEN_POLICY = 'version: 1\nrules:\n  - name: payments-token\n    when: { project_id: "20" }\n    grant: { token: { audiences: [https://a.internal] } }\n';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-serve-'));
  keys = JSON.stringify(await generateSigningJwks());
});
after(() => rm(dir, { recursive: true, force: true }));

describe('serve refuses what it cannot honour', () => {
  it('exits 2 naming the rule, the grant and the missing section when the policy grants linkerd without a linkerd section', async () => {
    const { code, stderr } = await serve(CONFIG, MESH_POLICY);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /policy rule payments-mesh grants linkerd, but the config has no linkerd section/);
  });

  it('exits 2 on a google section with a key it does not know', async () => {
    const { code, stderr } = await serve(`${CONFIG}google: { iamCredentialsUrl: "https://iamcredentials.googleapis.com", keyFile: k.json }\n`, TOKEN_POLICY);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /config: .*google/);
  });

  it('exits 2 on a config key it does not know', async () => {
    const { code, stderr } = await serve(`${CONFIG}extra: true\n`, TOKEN_POLICY);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /config: /);
  });
});
