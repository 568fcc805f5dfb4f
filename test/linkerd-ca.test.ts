/** The Linkerd CA adapter with real crypto: leaf profile as openssl sees it, serials, clamping, issuer checks. */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { isBrokerError } from '../src/core/errors.js';
import { CaSetupError, createCertificateAuthority, createCertificateAuthorityFromPems, doctorCa } from '../src/adapters/ca/index.js';
import { createEphemeralCa, generateCaMaterial, type EphemeralCa } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import {
  IDENTITY, NAMING, SPIFFE_ID, contextAt, minutesAfter, opensslCsr, opensslText, opensslVerify, planFor, scratchDir, writeFiles,
} from './linkerd-fixtures.js';

const HOUR = 60;
const dir = scratchDir();

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    return err.code;
  }
  return 'no error';
}

describe('issued leaves', () => {
  const now = new Date();
  let ephemeral: EphemeralCa;
  before(async () => {
    ephemeral = await createEphemeralCa(NAMING, now);
  });
  const issue = (csr = generateKeyAndRequest().csrPem, notAfter = minutesAfter(now, 10)) =>
    ephemeral.ca.issue(planFor(csr, notAfter), contextAt(now));

  it('a leaf passes openssl verify with the anchors as CA file and the chain as untrusted', async () => {
    const issued = await issue();
    const result = opensslVerify(dir, issued.trustAnchors, issued.chain, issued.certificate);
    assert.ok(result.ok, result.output);
  });

  it('openssl x509 -text shows the Linkerd leaf profile and the provenance extensions', async () => {
    const text = opensslText(dir, (await issue()).certificate);
    const expected = [
      /Signature Algorithm: ecdsa-with-SHA256/, /ASN1 OID: prime256v1/, /Basic Constraints: critical\s+CA:FALSE/,
      /Key Usage: critical\s+Digital Signature, Key Encipherment/, /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
      new RegExp(`Subject Alternative Name:\\s+DNS:${IDENTITY.replace(/\./g, '\\.')}, URI:${SPIFFE_ID}\\n`),
      /Authority Key Identifier/, /Subject Key Identifier/,
      /1\.3\.6\.1\.4\.1\.57264\.1\.13:\s+\.\(714a629c/, /1\.3\.6\.1\.4\.1\.57264\.1\.14:\s+\.\.refs\/heads\/main/,
      /1\.3\.6\.1\.4\.1\.57264\.1\.15:\s+\.\.20/, /1\.3\.6\.1\.4\.1\.57264\.1\.23:\s+\.\nproduction/,
      /1\.3\.6\.1\.4\.1\.57264\.1\.21:\s+\.2https:\/\/gitlab\.example\.com\/payments\/api\/-\/jobs\/302/,
    ];
    for (const pattern of expected) assert.match(text, pattern);
    assert.doesNotMatch(text, /^\s+2\.25\./m, 'no UUID-arc OIDs');
  });

  it('nothing but the public key is taken from an openssl-made CSR with its own subject and names', async () => {
    const csr = opensslCsr(dir, ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', `subjectAltName=URI:${SPIFFE_ID}`, '-addext', 'extendedKeyUsage=clientAuth']);
    const leaf = new X509Certificate((await issue(csr)).certificate);
    assert.equal(leaf.subject, `CN=${IDENTITY}`);
    assert.equal(leaf.subjectAltName, `DNS:${IDENTITY}, URI:${SPIFFE_ID}`);
    assert.ok(!opensslText(dir, leaf.toString()).includes('attacker'));
  });

  it('10,000 issued serials are distinct, positive and carry at least 128 bits', async () => {
    const csr = generateKeyAndRequest().csrPem;
    const serials = new Set<string>();
    for (let i = 0; i < 10_000; i++) serials.add((await issue(csr)).serialNumber);
    assert.equal(serials.size, 10_000);
    for (const serial of [...serials].slice(0, 100)) {
      assert.equal(serial.length, 34);
      assert.ok(Number.parseInt(serial.slice(0, 2), 16) >= 0x40 && Number.parseInt(serial.slice(0, 2), 16) < 0x80);
    }
  });

  it('the issuer private key appears in no response, in any encoding', async () => {
    const issued = await issue();
    const scalar = Buffer.from(createPrivateKey(ephemeral.issuerKeyPem).export({ format: 'jwk' }).d as string, 'base64url');
    const serialised = JSON.stringify(issued);
    for (const encoding of ['hex', 'base64', 'base64url'] as const) assert.ok(!serialised.includes(scalar.toString(encoding)));
    const ders = serialised.match(/-----BEGIN [A-Z ]+-----[^-]+/g) ?? [];
    assert.ok(ders.length >= 3);
    for (const block of ders) assert.equal(Buffer.from(block.replace(/-----BEGIN [A-Z ]+-----|\\n/g, ''), 'base64').indexOf(scalar), -1);
    assert.ok(!serialised.includes('PRIVATE KEY'));
  });
});

describe('validity clamping', () => {
  const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 500);
  const cases = [
    { name: 'a 24 h request against an issuer that expires in 1 h ends with the issuer', requested: 24 * HOUR, issuerHours: 1, expected: 60 },
    { name: 'a 10 m rule lifetime is kept', requested: 10, issuerHours: 1, expected: 10 },
    { name: 'a request over 24 h is cut to 24 h', requested: 48 * HOUR, issuerHours: 72, expected: 24 * HOUR },
  ];
  for (const { name, requested, issuerHours, expected } of cases) {
    it(name, async () => {
      const material = await generateCaMaterial({ ...NAMING, now, issuerNotAfter: minutesAfter(now, issuerHours * HOUR) });
      const ca = createCertificateAuthorityFromPems(NAMING, material, now);
      const issued = await ca.issue(planFor(generateKeyAndRequest().csrPem, minutesAfter(now, requested)), contextAt(now));
      const leaf = new X509Certificate(issued.certificate);
      const expectedEnd = Math.floor(minutesAfter(now, expected).getTime() / 1000) * 1000;
      assert.equal(issued.expiresAt.getTime(), expectedEnd);
      assert.equal(new Date(leaf.validTo).getTime(), expectedEnd);
      assert.equal(new Date(leaf.validFrom).getTime(), Math.floor(now.getTime() / 1000) * 1000 - 20_000, 'back-dated by 20 s');
      assert.ok(opensslVerify(dir, issued.trustAnchors, issued.chain, issued.certificate).ok);
    });
  }

  it('an ID token that has already expired gets token_expired, not a zero-length certificate', async () => {
    const { ca } = await createEphemeralCa(NAMING, now);
    assert.equal(await codeOf(ca.issue(planFor(generateKeyAndRequest().csrPem, now), contextAt(now))), 'token_expired');
  });
});

describe('issuer checks', () => {
  const now = new Date();
  const refused = [
    {
      name: 'an expired issuer is refused at creation',
      material: () => generateCaMaterial({ ...NAMING, now, issuerNotBefore: minutesAfter(now, -120), issuerNotAfter: minutesAfter(now, -60) }),
      message: /expired/,
    },
    {
      name: 'an issuer that is not yet valid is refused at creation',
      material: () => generateCaMaterial({ ...NAMING, now, issuerNotBefore: minutesAfter(now, 60) }),
      message: /not valid before/,
    },
    {
      name: 'an issuer that does not chain to the trust anchors is refused',
      material: async () => ({ ...(await generateCaMaterial({ ...NAMING, now })), trustAnchorsPem: (await generateCaMaterial({ ...NAMING, now })).trustAnchorsPem }),
      message: /does not chain/,
    },
    {
      name: 'a key that is not the issuer key is refused',
      material: async () => ({ ...(await generateCaMaterial({ ...NAMING, now })), issuerKeyPem: (await generateCaMaterial({ ...NAMING, now })).issuerKeyPem }),
      message: /does not match/,
    },
    {
      name: 'a leaf used as the issuer is refused as not a CA',
      material: async () => {
        const ephemeral = await createEphemeralCa(NAMING, now);
        const { csrPem, privateKeyPem } = generateKeyAndRequest();
        const issued = await ephemeral.ca.issue(planFor(csrPem, minutesAfter(now, 10)), contextAt(now));
        return { issuerCertPem: issued.certificate, issuerKeyPem: privateKeyPem, trustAnchorsPem: ephemeral.issuerCertPem };
      },
      message: /is not a CA/,
    },
  ];
  for (const { name, material, message } of refused) {
    it(name, async () => {
      const pems = await material();
      assert.throws(() => createCertificateAuthorityFromPems(NAMING, pems, now), (err) => err instanceof CaSetupError && message.test(err.message));
    });
  }

  it('once the issuer has expired, check() and issue() answer upstream_unavailable', async () => {
    const material = await generateCaMaterial({ ...NAMING, now, issuerNotAfter: minutesAfter(now, 5) });
    const ca = createCertificateAuthorityFromPems(NAMING, material, now);
    const later = minutesAfter(now, 6);
    assert.throws(() => ca.check(later), (err) => isBrokerError(err) && err.code === 'upstream_unavailable');
    assert.equal(await codeOf(ca.issue(planFor(generateKeyAndRequest().csrPem, minutesAfter(later, 5)), contextAt(later))), 'upstream_unavailable');
    ca.check(now);
  });

  it('the CA loads from the files the config names, and a missing file is named in the error', async () => {
    const material = await generateCaMaterial({ ...NAMING, now });
    const paths = writeFiles(scratchDir(), { 'issuer.crt': material.issuerCertPem, 'issuer.key': material.issuerKeyPem, 'ca.crt': material.trustAnchorsPem });
    const files = { ...NAMING, issuerCertFile: paths['issuer.crt'] as string, issuerKeyFile: paths['issuer.key'] as string, trustAnchorsFile: paths['ca.crt'] as string };
    assert.equal(createCertificateAuthority(files, now).trustAnchorsPem(), material.trustAnchorsPem.trim() + '\n');
    assert.throws(() => createCertificateAuthority({ ...files, issuerKeyFile: '/nonexistent/issuer.key' }, now), /linkerd\.issuerKeyFile: cannot read/);
  });

  it('doctor warns about an issuer without name constraints that expires within 7 days, and not about a good one', async () => {
    const write = (material: Awaited<ReturnType<typeof generateCaMaterial>>) => {
      const paths = writeFiles(scratchDir(), { 'issuer.crt': material.issuerCertPem, 'issuer.key': material.issuerKeyPem, 'ca.crt': material.trustAnchorsPem });
      return { ...NAMING, issuerCertFile: paths['issuer.crt'] as string, issuerKeyFile: paths['issuer.key'] as string, trustAnchorsFile: paths['ca.crt'] as string };
    };
    const weak = doctorCa(write(await generateCaMaterial({ ...NAMING, now, nameConstraints: false, issuerNotAfter: minutesAfter(now, 3 * 24 * HOUR) })), now);
    assert.equal(weak.ok, true);
    assert.deepEqual(weak.warnings.map((warning) => /name constraints/.test(warning) || /within 7 days/.test(warning)), [true, true]);
    const good = doctorCa(write(await generateCaMaterial({ ...NAMING, now })), now);
    assert.deepEqual(good, { ok: true, errors: [], warnings: [] });
    const broken = doctorCa(write(await generateCaMaterial({ ...NAMING, now, issuerNotAfter: minutesAfter(now, -1), issuerNotBefore: minutesAfter(now, -60) })), now);
    assert.equal(broken.ok, false);
  });

  it('an issuer name-constrained to the ci namespace cannot make a leaf for another namespace that openssl accepts', async () => {
    const material = await generateCaMaterial({ ...NAMING, now, nameConstraints: { namespace: 'ci' } });
    const ca = createCertificateAuthorityFromPems(NAMING, material, now);
    const inside = await ca.issue(planFor(generateKeyAndRequest().csrPem, minutesAfter(now, 10)), contextAt(now));
    assert.ok(opensslVerify(dir, inside.trustAnchors, inside.chain, inside.certificate).ok);
    const outside = await ca.issue(planFor(generateKeyAndRequest().csrPem, minutesAfter(now, 10), 'deploy', 'payments'), contextAt(now));
    const result = opensslVerify(dir, outside.trustAnchors, outside.chain, outside.certificate);
    assert.equal(result.ok, false);
    assert.match(result.output, /permitted subtree violation/);
  });
});
