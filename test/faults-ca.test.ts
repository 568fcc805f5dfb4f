/**
 * The Linkerd issuer certificate expiring: while the broker runs (a clock moved past the issuer's notAfter), a linkerd
 * grant is refused with 503 upstream_unavailable (never a 500, never a certificate), readiness reports the CA, and the
 * other grant kinds are still served; at start the broker refuses to run, and `doctor` names the expiry.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { runDoctor } from '../src/cli/doctor.js';
import { assertDenied } from './support/assertions.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const NAMING = { trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' };
const MINUTE_MS = 60_000;

const MESH_POLICY = `version: 1
rules:
  - name: payments-mesh
    when: { project_id: "20" }
    grant:
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 5m }
      token: { audiences: [https://deploy-api.internal] }
`;

/** Writes an issuer valid from `notBefore` to `notAfter` and returns the config's linkerd section for it. */
async function writeIssuer(dir: string, notBefore: Date, notAfter: Date): Promise<string> {
  const material = await generateCaMaterial({ ...NAMING, now: notBefore, issuerNotBefore: notBefore, issuerNotAfter: notAfter });
  const files = { cert: join(dir, 'issuer.crt'), key: join(dir, 'issuer.key'), anchors: join(dir, 'ca.crt') };
  await writeFile(files.cert, material.issuerCertPem);
  await writeFile(files.key, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(files.anchors, material.trustAnchorsPem);
  return `linkerd: { issuerCertFile: ${files.cert}, issuerKeyFile: ${files.key}, trustAnchorsFile: ${files.anchors} }`;
}

let gitlab: StandInGitLab;
let dir: string;
before(async () => {
  gitlab = await startGitLab();
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-ca-faults-'));
});
after(async () => {
  await gitlab.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a Linkerd issuer that expires while the broker runs', () => {
  let h: Harness;
  let offsetMs = 0;
  const clock = { now: () => new Date(Date.now() + offsetMs) };
  /** An ID token issued at the broker's (moved) clock. */
  const tokenNow = () => {
    const iat = Math.floor(clock.now().getTime() / 1000);
    return gitlab.token(AUDIENCE, { iat, nbf: iat - 5, exp: iat + 3600 });
  };
  const csr = () => generateKeyAndRequest().csrPem;

  before(async () => {
    const issuerDir = join(dir, 'running');
    await mkdir(issuerDir);
    const linkerd = await writeIssuer(issuerDir, new Date(Date.now() - 60 * MINUTE_MS), new Date(Date.now() + 30 * MINUTE_MS));
    h = await startHarness({ gitlab, policy: MESH_POLICY, configExtra: linkerd, overrides: { clock } });
  });
  after(() => h.close());

  it('issues certificates before the issuer expires, and is ready', async () => {
    const result = await h.exchange(await tokenNow(), { linkerd: { csr: csr() } });
    assert.equal(result.status, 200, result.text);
    assert.equal((await h.call('/readyz')).status, 200);
  });

  it('after it expired: 503 upstream_unavailable with no certificate, readiness false on the CA, tokens still served', async () => {
    offsetMs = 31 * MINUTE_MS;
    const idToken = await tokenNow();
    const refused = await h.exchange(idToken, { linkerd: { csr: csr() }, token: {} });
    await assertDenied(h, refused, 503, 'upstream_unavailable', idToken);
    assert.doesNotMatch(refused.text, /BEGIN CERTIFICATE|eyJ[\w-]+\.eyJ/);
    assert.ok(h.opsLog.some((line) => line.includes('the chain expired at')), 'the operational log names the expiry');

    const ready = await h.call('/readyz');
    assert.equal(ready.status, 503);
    assert.equal((ready.body.checks as Record<string, boolean>).ca, false);

    const tokenOnly = await h.exchange(await tokenNow(), { token: {} });
    assert.equal(tokenOnly.status, 200, tokenOnly.text);
  });
});

describe('a Linkerd issuer that has already expired at start', () => {
  let linkerd: string;
  before(async () => {
    const issuerDir = join(dir, 'expired');
    await mkdir(issuerDir);
    linkerd = await writeIssuer(issuerDir, new Date(Date.now() - 120 * MINUTE_MS), new Date(Date.now() - 60 * MINUTE_MS));
  });

  it('the broker refuses to start, saying the chain expired', async () => {
    await assert.rejects(startHarness({ gitlab, policy: MESH_POLICY, configExtra: linkerd }), (err: Error) => {
      assert.equal(err.name, 'CaSetupError');
      assert.match(err.message, /issuer certificate: the chain expired at/);
      return true;
    });
  });

  it('doctor fails the linkerd CA check, naming the expiry, with exit 1', async () => {
    const configDir = join(dir, 'doctor');
    await mkdir(join(configDir, 'policy'), { recursive: true });
    await writeFile(join(configDir, 'policy', 'mesh.yaml'), MESH_POLICY);
    await writeFile(join(configDir, 'token'), API_TOKEN, { mode: 0o600 });
    await writeFile(join(configDir, 'keys.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o600 });
    const configPath = join(configDir, 'broker.yaml');
    await writeFile(configPath, `server: { publicUrl: ${AUDIENCE} }
gitlab:
  - { issuer: "${gitlab.issuer}", audience: ${AUDIENCE}, apiTokenFile: token }
policy: { path: policy }
signing: { keysFile: keys.json }
${linkerd}
`);
    const { rows, exitCode } = await runDoctor(configPath);
    const ca = rows.filter(([, check]) => check === 'linkerd CA');
    assert.ok(ca.some(([status, , detail]) => status === 'fail' && /the chain expired at/.test(detail)), JSON.stringify(rows));
    assert.equal(exitCode, 1);
  });
});
