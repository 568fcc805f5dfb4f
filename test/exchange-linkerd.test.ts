/**
 * The linkerd grant through POST /v1/exchange with a CA loaded from the files the config names: the leaf chains to
 * the anchors (openssl verify), carries the identity the rule grants, a bad CSR is a 400 that spends nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { assertDenied } from './support/assertions.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const POLICY = `
version: 1
rules:
  - name: payments-mesh
    when: { project_id: "20", ref_path: refs/heads/main, ref_protected: "true" }
    grant:
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 10m }
      token: { audiences: [https://deploy-api.internal] }
`;

let h: Harness;
let anchors: string;
let caDir: string;

before(async () => {
  const material = await generateCaMaterial({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' });
  caDir = await mkdtemp(join(tmpdir(), 'oidc-broker-ca-'));
  const files = { cert: join(caDir, 'issuer.crt'), key: join(caDir, 'issuer.key'), anchors: join(caDir, 'ca.crt') };
  await writeFile(files.cert, material.issuerCertPem);
  await writeFile(files.key, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(files.anchors, material.trustAnchorsPem);
  anchors = files.anchors;
  h = await startHarness({
    policy: POLICY,
    configExtra: `linkerd: { trustDomain: cluster.local, controlPlaneNamespace: linkerd, issuerCertFile: ${files.cert}, issuerKeyFile: ${files.key}, trustAnchorsFile: ${files.anchors} }`,
  });
});
after(async () => {
  await h.close();
  await rm(caDir, { recursive: true, force: true });
});

describe('the linkerd grant', () => {
  it('issues a leaf for the granted identity that openssl verifies against the anchors', async () => {
    const { csrPem } = generateKeyAndRequest();
    const result = await h.exchange(await h.gitlab.token(AUDIENCE), { linkerd: { csr: csrPem }, token: {} });
    assert.equal(result.status, 200, result.text);
    const grant = (result.body.grants as { linkerd: Record<string, string> }).linkerd;
    assert.equal(grant.identity, 'deploy-payments.ci.serviceaccount.identity.linkerd.cluster.local');
    assert.equal(grant.spiffeId, 'spiffe://cluster.local/ns/ci/sa/deploy-payments');
    const leaf = join(h.dir, 'leaf.pem');
    const chain = join(h.dir, 'chain.pem');
    await writeFile(leaf, grant.certificate ?? '');
    await writeFile(chain, grant.chain ?? '');
    const { stdout } = await promisify(execFile)('openssl', ['verify', '-CAfile', anchors, '-untrusted', chain, leaf]);
    assert.match(stdout, /: OK/);
    assert.ok(Date.parse(grant.expiresAt ?? '') <= Date.now() + 10 * 60_000 + 1000, 'the rule lifetime caps the certificate');
    const records = (await h.auditRecords()).filter((record) => record.requestId === result.body.requestId && record.phase === 'result');
    assert.match(JSON.stringify(records[0]?.minted), new RegExp(grant.serialNumber ?? 'missing'));
  });

  it('serves the trust anchors at /v1/trust-bundle and reports the CA ready', async () => {
    const bundle = await h.call('/v1/trust-bundle');
    assert.equal(bundle.status, 200);
    assert.match(bundle.text, /BEGIN CERTIFICATE/);
    assert.equal(((await h.call('/readyz')).body.checks as Record<string, boolean>).ca, true);
  });

  const badCsrs: Array<{ name: string; csr: () => string }> = [
    { name: 'a CSR asking for another identity', csr: () => generateKeyAndRequest({ dnsNames: ['admin.linkerd.serviceaccount.identity.linkerd.cluster.local'] }).csrPem },
    { name: 'a CSR asking for an extra SAN', csr: () => generateKeyAndRequest({ dnsNames: ['deploy-payments.ci.serviceaccount.identity.linkerd.cluster.local', 'evil.example.com'] }).csrPem },
    { name: 'text that is not a CSR', csr: () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' },
  ];
  for (const testCase of badCsrs) {
    it(`refuses ${testCase.name} with 400 invalid_request, and the jti stays usable`, async () => {
      const token = await h.gitlab.token(AUDIENCE);
      await assertDenied(h, await h.exchange(token, { linkerd: { csr: testCase.csr() } }), 400, 'invalid_request', token);
      assert.equal((await h.exchange(token, { linkerd: { csr: generateKeyAndRequest().csrPem } })).status, 200);
    });
  }
});
