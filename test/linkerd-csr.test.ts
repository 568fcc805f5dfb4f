/** CSR abuse: every request the broker must refuse with invalid_request, and the forms it must accept. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { isBrokerError } from '../src/core/errors.js';
import { createEphemeralCa, type EphemeralCa } from '../src/adapters/ca/ephemeral.js';
import { TAG, contextTag, octetString, sequence, tlv } from '../src/adapters/ca/der.js';
import { buildCertificationRequest, csrExtension, generateKeyAndRequest, subjectAltName } from '../src/adapters/ca/request.js';
import { IDENTITY, NAMING, SPIFFE_ID, contextAt, csrSignedByAnotherKey, minutesAfter, opensslCsr, planFor, scratchDir } from './linkerd-fixtures.js';

const dir = scratchDir();
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const withExtensions = (...extensions: Buffer[]) => buildCertificationRequest(p256(), extensions);
const withNames = (dnsNames: string[], uris: string[] = []) => withExtensions(subjectAltName({ dnsNames, uris }));
/** The granted identity as a DNS SAN under an extension whose OID is spelled in raw bytes. */
const identityUnderOid = (oidHex: string) => sequence(tlv(TAG.oid, Buffer.from(oidHex, 'hex')), octetString(sequence(tlv(contextTag(2, false), Buffer.from(IDENTITY, 'latin1')))));
const otherName = (kindTag: number, value: string) => csrExtension('2.5.29.17', sequence(tlv(kindTag, Buffer.from(value, 'latin1'))));

describe('CSR checks', () => {
  const now = new Date();
  let ephemeral: EphemeralCa;
  before(async () => {
    ephemeral = await createEphemeralCa(NAMING, now);
  });
  const issue = (csr: string) => ephemeral.ca.issue(planFor(csr, minutesAfter(now, 10)), contextAt(now));

  const refused: Array<{ name: string; csr: () => string; detail: RegExp }> = [
    { name: 'text that is not PEM', csr: () => 'hello', detail: /PEM/ },
    { name: 'a PEM whose body is not DER', csr: () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', detail: /not a valid DER/ },
    { name: 'a valid CSR followed by trailing bytes', csr: () => appendToDer(generateKeyAndRequest().csrPem), detail: /not a valid DER/ },
    { name: 'an RSA key', csr: () => opensslCsr(dir, ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']), detail: /P-256/ },
    { name: 'a P-384 key', csr: () => opensslCsr(dir, ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']), detail: /P-256/ },
    { name: 'an Ed25519 key', csr: () => opensslCsr(dir, ['-algorithm', 'ED25519']), detail: /P-256/ },
    { name: 'a signature made by a different key', csr: csrSignedByAnotherKey, detail: /signature does not verify/ },
    { name: 'another identity as DNS name', csr: () => withNames(['admin.linkerd.serviceaccount.identity.linkerd.cluster.local']), detail: /DNS name/ },
    { name: 'another identity as SPIFFE ID', csr: () => withNames([], ['spiffe://cluster.local/ns/linkerd/sa/admin']), detail: /URI/ },
    { name: 'the identity plus an extra DNS name', csr: () => withNames([IDENTITY, 'payments.payments.svc.cluster.local']), detail: /DNS name/ },
    { name: 'the identity twice', csr: () => withNames([IDENTITY, IDENTITY]), detail: /repeats/ },
    { name: 'an IP address SAN', csr: () => withExtensions(otherName(contextTag(7, false), '\x7f\x00\x00\x01')), detail: /IP address/ },
    { name: 'an email SAN', csr: () => withExtensions(otherName(contextTag(1, false), 'ci@example.com')), detail: /email/ },
    {
      name: 'CA rights through basicConstraints',
      csr: () => withExtensions(csrExtension('2.5.29.19', sequence(tlv(TAG.boolean, Buffer.from([0xff]))), true)),
      detail: /CA rights/,
    },
    { name: 'CA rights through keyCertSign', csr: () => withExtensions(csrExtension('2.5.29.15', tlv(TAG.bitString, Buffer.from([0x02, 0x04])), true)), detail: /CA rights/ },
    { name: 'CA rights from openssl', csr: () => opensslCsr(dir, ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'basicConstraints=critical,CA:TRUE']), detail: /CA rights/ },
    // Regression: these once read as subjectAltName (2.5.29.17); other parsers see no such extension, or none at all.
    { name: 'an extension OID whose last arc is truncated (55 1d 11 81)', csr: () => withExtensions(identityUnderOid('551d1181')), detail: /not a valid DER/ },
    { name: 'an extension OID with a non-minimal arc (55 1d 80 11)', csr: () => withExtensions(identityUnderOid('551d8011')), detail: /not a valid DER/ },
    { name: 'an extension the broker does not grant (name constraints)', csr: () => withExtensions(csrExtension('2.5.29.30', sequence())), detail: /2\.5\.29\.30/ },
  ];
  for (const { name, csr, detail } of refused) {
    it(`refuses ${name} with invalid_request`, async () => {
      await assert.rejects(issue(csr()), (err) => {
        assert.ok(isBrokerError(err), String(err));
        assert.equal(err.code, 'invalid_request');
        assert.match(err.detail, detail);
        return true;
      });
    });
  }

  const accepted: Array<{ name: string; csr: () => string }> = [
    { name: 'no SANs at all', csr: () => generateKeyAndRequest().csrPem },
    { name: 'the DNS identity only', csr: () => withNames([IDENTITY]) },
    { name: 'the DNS identity under the subjectAltName OID spelled in raw bytes (55 1d 11)', csr: () => withExtensions(identityUnderOid('551d11')) },
    { name: 'the SPIFFE ID only', csr: () => withNames([], [SPIFFE_ID]) },
    { name: 'both identity forms', csr: () => withNames([IDENTITY], [SPIFFE_ID]) },
    { name: 'an openssl CSR with both forms and a subject', csr: () => opensslCsr(dir, ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', `subjectAltName=DNS:${IDENTITY},URI:${SPIFFE_ID}`]) },
    { name: 'an end-entity basicConstraints and a clientAuth EKU', csr: () => withExtensions(csrExtension('2.5.29.19', sequence()), csrExtension('2.5.29.37', sequence(tlv(TAG.oid, Buffer.from('2b06010505070302', 'hex'))))) },
  ];
  for (const { name, csr } of accepted) {
    it(`accepts ${name}`, async () => {
      const issued = await issue(csr());
      assert.equal(issued.identity, IDENTITY);
      assert.equal(issued.spiffeId, SPIFFE_ID);
    });
  }
});

function appendToDer(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const body = Buffer.concat([der, Buffer.from([0, 0])]).toString('base64');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`;
}
