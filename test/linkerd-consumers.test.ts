/**
 * Our mesh certificates as their other consumers see them, not only openssl: Go's crypto/x509 parses and verifies
 * every chain (Linkerd's control plane, Kubernetes, Vault), and the DER carries nothing Linkerd's proxy
 * (rustls-webpki) refuses: no URI name constraint anywhere, no OID arc above 2^28, no critical extension it does not know.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { consumerProblems, extensionsOf, oidsIn, oversizedOids, uriNameConstraints } from '../src/adapters/ca/consumers.js';
import { fromPem, toPem } from '../src/adapters/ca/der.js';
import { createEphemeralCa, generateCaMaterial, type EphemeralCa } from '../src/adapters/ca/ephemeral.js';
import { createCertificateAuthorityFromPems, type CaPems } from '../src/adapters/ca/index.js';
import { loadIssuerMaterial, subjectKeyIdOf, subjectNameOf } from '../src/adapters/ca/issuer.js';
import { createLeafSigner } from '../src/adapters/ca/leaf.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { linkerdIdentity, provenanceOf } from '../src/core/linkerd.js';
import type { IssuedCertificate } from '../src/ports.js';
import { buildGoVerifier, type GoVerifier } from './support/go-x509.js';
import {
  FORMER_UUID_ARC, IDENTITY, NAMING, SPIFFE_ID, contextAt, issuerFromDocsRecipe, linkerdDocBlock, minutesAfter, planFor,
  principalAt, withUriNameConstraint, withUuidArcExtension,
} from './linkerd-fixtures.js';

const DAY_MS = 24 * 3600 * 1000;
/** The extensions rustls-webpki processes; a critical extension outside this set makes it reject the certificate. */
const CRITICAL_EXTENSIONS_THE_PROXY_KNOWS = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.17', '2.5.29.37', '2.5.29.30']);
const LONG_SERVICE_ACCOUNT = 'database-migrations-for-the-payments-api';

const derOf = (pem: string): Buffer => fromPem(pem, 'CERTIFICATE') as Buffer;
const pemBlocks = (pem: string): string[] => pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
const everyCertificate = (issued: IssuedCertificate): Buffer[] =>
  [issued.certificate, ...pemBlocks(issued.chain), ...pemBlocks(issued.trustAnchors)].map(derOf);

async function issueUnder(pems: CaPems, serviceAccount = 'deploy-payments', namespace = 'ci'): Promise<IssuedCertificate> {
  const now = new Date();
  const ca = createCertificateAuthorityFromPems(NAMING, pems, now);
  return ca.issue(planFor(generateKeyAndRequest().csrPem, minutesAfter(now, 10), serviceAccount, namespace), contextAt(now));
}

/** A leaf exactly as the broker signed them before: today's profile plus the former UUID-arc provenance. */
function leafWithFormerProvenance(pems: CaPems): string {
  const material = loadIssuerMaterial(pems);
  const signLeaf = createLeafSigner({ issuerName: subjectNameOf(material.issuer), issuerKeyId: subjectKeyIdOf(material.issuer), scheme: material.scheme, key: material.key });
  const now = new Date();
  const { der } = signLeaf({
    identity: linkerdIdentity({ ...NAMING, serviceAccount: 'deploy-payments', namespace: 'ci' }),
    subjectPublicKeyInfo: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }),
    validity: { notBefore: minutesAfter(now, -1), notAfter: minutesAfter(now, 10) },
    provenance: [...provenanceOf({ principal: principalAt(now) }), { oid: `${FORMER_UUID_ARC}.1`, value: '574' }],
  });
  return toPem(der, 'CERTIFICATE');
}

let go: GoVerifier;
let mesh: EphemeralCa;
before(async () => {
  go = buildGoVerifier();
  mesh = await createEphemeralCa(NAMING);
});
after(() => go.dispose());

describe("Go's crypto/x509", () => {
  it('parses an issued leaf and verifies it for server and client auth under the trust anchors', async () => {
    const issued = await issueUnder(mesh);
    const verdict = go.verify(issued.certificate, issued.chain, issued.trustAnchors, IDENTITY);
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    assert.deepEqual([verdict.serverAuth, verdict.clientAuth], ['ok', 'ok']);
    assert.deepEqual([verdict.dnsNames, verdict.uris, verdict.commonName], [[IDENTITY], [SPIFFE_ID], IDENTITY]);
    assert.equal(verdict.unhandledCriticalExtensions, null);
  });

  it('verifies a leaf whose identity is too long for the subject (empty subject, critical SAN)', async () => {
    const issued = await issueUnder(mesh, LONG_SERVICE_ACCOUNT);
    const identity = linkerdIdentity({ ...NAMING, serviceAccount: LONG_SERVICE_ACCOUNT, namespace: 'ci' }).dnsName;
    const verdict = go.verify(issued.certificate, issued.chain, issued.trustAnchors, identity);
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    assert.equal(verdict.commonName, '');
  });

  it('refuses to parse a leaf with the former 128-bit UUID-arc provenance, as Linkerd\'s control plane would', () => {
    const verdict = go.verify(leafWithFormerProvenance(mesh), mesh.issuerCertPem, mesh.trustAnchorsPem, IDENTITY);
    assert.equal(verdict.ok, false);
    assert.match(verdict.error ?? '', /malformed extension OID/);
  });

  it('refuses a leaf for another namespace under an issuer constrained to the ci namespace', async () => {
    const material = await generateCaMaterial({ ...NAMING, nameConstraints: { namespace: 'ci' } });
    const inside = await issueUnder(material);
    assert.equal(go.verify(inside.certificate, inside.chain, inside.trustAnchors, IDENTITY).ok, true);
    const outside = await issueUnder(material, 'deploy', 'payments');
    const verdict = go.verify(outside.certificate, outside.chain, outside.trustAnchors, 'deploy.payments.serviceaccount.identity.linkerd.cluster.local');
    assert.equal(verdict.ok, false);
    assert.match(verdict.serverAuth, /not (?:authorized|permitted) to sign for this name/);
  });

  it('verifies a leaf from the issuer that docs/linkerd.md tells operators to make with openssl', async () => {
    const issued = await issueUnder(issuerFromDocsRecipe());
    const verdict = go.verify(issued.certificate, issued.chain, issued.trustAnchors, IDENTITY);
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
  });
});

describe('what Linkerd\'s proxy and Go refuse, checked on the DER', () => {
  it('no certificate the CA issues has an OID arc above 2^28, in its structure or in any extension', async () => {
    for (const serviceAccount of ['deploy-payments', LONG_SERVICE_ACCOUNT]) {
      const issued = await issueUnder(mesh, serviceAccount);
      const [leaf] = everyCertificate(issued);
      const oids = oidsIn(leaf as Buffer);
      // The walk reaches inside extension values (EKU purposes) and sees every provenance OID.
      for (const oid of ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2', '1.3.6.1.4.1.57264.1.21', '1.2.840.10045.4.3.2']) assert.ok(oids.includes(oid), oid);
      for (const der of everyCertificate(issued)) assert.deepEqual(oversizedOids(der), []);
    }
  });

  it('the checks find the former UUID arc in a leaf and a URI name constraint in an issuer', () => {
    assert.deepEqual(oversizedOids(derOf(leafWithFormerProvenance(mesh))), [`${FORMER_UUID_ARC}.1`]);
    const uriConstrained = issuerFromDocsRecipe(withUriNameConstraint);
    assert.deepEqual(uriNameConstraints(derOf(uriConstrained.issuerCertPem)), ['permitted URI:cluster.local']);
    const problems = consumerProblems([
      { name: 'issuer', der: derOf(uriConstrained.issuerCertPem) },
      { name: 'anchor', der: derOf(issuerFromDocsRecipe(withUuidArcExtension).issuerCertPem) },
    ]);
    assert.equal(problems.length, 2);
    assert.match(problems[0] as string, /^issuer has a URI name constraint \(permitted URI:cluster\.local\): Linkerd's proxy \(rustls-webpki/);
    assert.match(problems[1] as string, /^anchor carries OID 2\.25\.\d+\.1 with an arc above 2\^28: Go's crypto\/x509/);
  });

  it('a certificate the strict DER reader cannot walk is reported as unchecked, not thrown', () => {
    assert.deepEqual(consumerProblems([{ name: 'odd', der: Buffer.from([0x30, 0x80, 0x00, 0x00]) }]), ['odd could not be read to check what mesh consumers refuse: bad length']);
  });

  const chains: { name: string; pems: () => Promise<CaPems> }[] = [
    { name: "dev mode's ephemeral CA", pems: async () => mesh },
    { name: 'an issuer constrained to one namespace', pems: () => generateCaMaterial({ ...NAMING, nameConstraints: { namespace: 'ci' } }) },
    { name: "docs/linkerd.md's openssl recipe", pems: async () => issuerFromDocsRecipe() },
  ];
  for (const { name, pems } of chains) {
    it(`${name}: no URI name constraint anywhere in the chain, a DNS one on the issuer, nothing a consumer refuses`, async () => {
      const issued = await issueUnder(await pems());
      const certificates = everyCertificate(issued);
      for (const der of certificates) assert.deepEqual(uriNameConstraints(der), []);
      const issuer = derOf(issued.chain);
      assert.ok(extensionsOf(issuer).some((extension) => extension.oid === '2.5.29.30' && extension.critical));
      assert.deepEqual(consumerProblems(certificates.map((der, index) => ({ name: `certificate ${index}`, der }))), []);
    });
  }

  it("docs/linkerd.md's step template constrains by DNS only", () => {
    const template = linkerdDocBlock('### With the step CLI', 'json');
    assert.match(template, /"permittedDNSDomains": \["ci\.serviceaccount\.identity\.linkerd\.cluster\.local"\]/);
    assert.doesNotMatch(template, /URI/i);
  });
});

describe("our leaf against the profile of Linkerd's identity controller", () => {
  it('DNS SAN first, SPIFFE URI second, server and client auth, only critical extensions the proxy knows, at most 24 h', async () => {
    for (const serviceAccount of ['deploy-payments', LONG_SERVICE_ACCOUNT]) {
      const issued = await issueUnder(mesh, serviceAccount);
      const leaf = new X509Certificate(issued.certificate);
      const identity = linkerdIdentity({ ...NAMING, serviceAccount, namespace: 'ci' });
      assert.equal(leaf.subjectAltName, `DNS:${identity.dnsName}, URI:${identity.spiffeId}`);
      assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
      const critical = extensionsOf(leaf.raw).filter((extension) => extension.critical).map((extension) => extension.oid);
      for (const oid of critical) assert.ok(CRITICAL_EXTENSIONS_THE_PROXY_KNOWS.has(oid), `critical ${oid}`);
      assert.ok(new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime() <= DAY_MS + 20_000);
      assert.equal(leaf.ca, false);
    }
  });
});
