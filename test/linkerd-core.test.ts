/** The pure side of mesh identities: names, validity windows and the provenance OID table. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROVENANCE_FIELDS, certificateValidity, linkerdIdentity, provenanceOf } from '../src/core/linkerd.js';
import { principalAt } from './linkerd-fixtures.js';
import { readDoc, section, tableRows } from './support/markdown.js';

describe('linkerd identity names', () => {
  it('follow Linkerd: <sa>.<ns>.serviceaccount.identity.<cp>.<td> and spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    assert.deepEqual(linkerdIdentity({ serviceAccount: 'deploy', namespace: 'ci', controlPlaneNamespace: 'linkerd', trustDomain: 'cluster.local' }), {
      dnsName: 'deploy.ci.serviceaccount.identity.linkerd.cluster.local',
      spiffeId: 'spiffe://cluster.local/ns/ci/sa/deploy',
    });
  });

  const bad = [
    { name: 'an upper-case service account', parts: { serviceAccount: 'Deploy', namespace: 'ci' } },
    { name: 'a namespace with a dot', parts: { serviceAccount: 'deploy', namespace: 'ci.evil' } },
    { name: 'a service account over 63 characters', parts: { serviceAccount: 'a'.repeat(64), namespace: 'ci' } },
    { name: 'a trust domain with an empty label', parts: { serviceAccount: 'deploy', namespace: 'ci', trustDomain: 'cluster..local' } },
  ];
  for (const { name, parts } of bad) {
    it(`are a TypeError (our own bug, caught at policy load) for ${name}`, () => {
      assert.throws(() => linkerdIdentity({ controlPlaneNamespace: 'linkerd', trustDomain: 'cluster.local', ...parts }), TypeError);
    });
  }
});

describe('certificate validity', () => {
  const now = new Date('2025-06-01T12:00:00.750Z');
  const at = (iso: string) => new Date(iso);
  const issuer = { issuerNotBefore: at('2025-01-01T00:00:00Z'), issuerNotAfter: at('2026-01-01T00:00:00Z') };
  const cases = [
    { name: 'keeps a requested end inside every cap', requested: '2025-06-01T12:10:00Z', expected: ['2025-06-01T11:59:40Z', '2025-06-01T12:10:00Z'] },
    { name: 'caps at 24 h', requested: '2025-06-05T00:00:00Z', expected: ['2025-06-01T11:59:40Z', '2025-06-02T12:00:00Z'] },
    { name: 'ends with an issuer that expires first', requested: '2025-06-01T18:00:00Z', issuerNotAfter: '2025-06-01T13:00:00Z', expected: ['2025-06-01T11:59:40Z', '2025-06-01T13:00:00Z'] },
    { name: 'never starts before a young issuer', requested: '2025-06-01T12:10:00Z', issuerNotBefore: '2025-06-01T11:59:55Z', expected: ['2025-06-01T11:59:55Z', '2025-06-01T12:10:00Z'] },
  ];
  for (const { name, requested, expected, ...override } of cases) {
    it(name, () => {
      const validity = certificateValidity({
        now, requestedNotAfter: at(requested), ...issuer,
        ...(override.issuerNotAfter ? { issuerNotAfter: at(override.issuerNotAfter) } : {}),
        ...(override.issuerNotBefore ? { issuerNotBefore: at(override.issuerNotBefore) } : {}),
      });
      assert.deepEqual([validity?.notBefore.toISOString(), validity?.notAfter.toISOString()], expected.map((iso) => at(iso).toISOString()));
    });
  }
  it('is undefined when the requested end is not after now', () => {
    assert.equal(certificateValidity({ now, requestedNotAfter: now, ...issuer }), undefined);
  });
});

describe('provenance extensions', () => {
  it('use distinct OIDs, all of them Fulcio numbers with Fulcio meanings', () => {
    const oids = PROVENANCE_FIELDS.map((field) => field.oid);
    assert.equal(new Set(oids).size, oids.length);
    const fulcio = Object.fromEntries(PROVENANCE_FIELDS.filter((field) => field.oid.startsWith('1.3.6.1.4.1.57264.1.')).map((field) => [field.name, field.oid.split('.').pop()]));
    assert.deepEqual(fulcio, {
      'Issuer (V2)': '8', 'Runner Environment': '11', 'Source Repository URI': '12', 'Source Repository Digest': '13',
      'Source Repository Ref': '14', 'Source Repository Identifier': '15', 'Build Config URI': '18', 'Build Config Digest': '19',
      'Build Trigger': '20', 'Run Invocation URI': '21', 'Deployment Environment': '23',
    });
    assert.equal(Object.keys(fulcio).length, PROVENANCE_FIELDS.length, 'no OID outside Fulcio\'s arc');
  });

  it('carry the pipeline, and leave out claims the token does not have', () => {
    const values = new Map(provenanceOf({ principal: principalAt(new Date(), { environment: undefined, ci_config_ref_uri: undefined }), }).map((entry) => [entry.oid, entry.value]));
    assert.equal(values.get('1.3.6.1.4.1.57264.1.12'), 'https://gitlab.example.com/payments/api');
    assert.equal(values.get('1.3.6.1.4.1.57264.1.21'), 'https://gitlab.example.com/payments/api/-/jobs/302');
    assert.equal(values.has('1.3.6.1.4.1.57264.1.23'), false);
    assert.equal(values.has('1.3.6.1.4.1.57264.1.18'), false);
  });
});

describe('the edges of names, windows and provenance', () => {
  const parts = { serviceAccount: 'deploy', namespace: 'ci', controlPlaneNamespace: 'linkerd', trustDomain: 'cluster.local' };

  it('check the control-plane namespace and every label of the trust domain', () => {
    for (const bad of [{ controlPlaneNamespace: 'Linkerd' }, { controlPlaneNamespace: '' }, { trustDomain: 'Cluster.local' }, { trustDomain: 'cluster-.local' },
      { trustDomain: `${'a'.repeat(64)}.local` }, { trustDomain: '.cluster.local' }, { trustDomain: 'cluster.local.' }, { trustDomain: '' }]) {
      assert.throws(() => linkerdIdentity({ ...parts, ...bad }), TypeError, JSON.stringify(bad));
    }
    assert.throws(() => linkerdIdentity({ ...parts, trustDomain: 'a b' }), { message: 'not a DNS trust domain: "a b"' });
    assert.throws(() => linkerdIdentity({ ...parts, namespace: 'C' }), { message: 'not a lower-case DNS label: "C"' });
    assert.equal(linkerdIdentity({ ...parts, trustDomain: `${'a'.repeat(63)}.b-c.d0` }).spiffeId, `spiffe://${'a'.repeat(63)}.b-c.d0/ns/ci/sa/deploy`);
    assert.equal(linkerdIdentity({ ...parts, trustDomain: 'local' }).dnsName, 'deploy.ci.serviceaccount.identity.linkerd.local');
    assert.equal(linkerdIdentity({ ...parts, serviceAccount: 'a', namespace: 'b', controlPlaneNamespace: 'c', trustDomain: 'x.y' }).dnsName, 'a.b.serviceaccount.identity.c.x.y');
    assert.equal(linkerdIdentity({ ...parts, trustDomain: 'x' }).spiffeId, 'spiffe://x/ns/ci/sa/deploy');
    const label = 'a'.repeat(63);
    assert.equal(linkerdIdentity({ ...parts, trustDomain: `${label}.${label}.${label}.${'b'.repeat(61)}` }).spiffeId.length, 'spiffe:///ns/ci/sa/deploy'.length + 253);
    assert.throws(() => linkerdIdentity({ ...parts, trustDomain: `${label}.${label}.${label}.${'b'.repeat(62)}` }), TypeError, 'a trust domain of 254 characters');
  });

  it('leave a window only when a whole second of it is after now', () => {
    const issuer = { issuerNotBefore: new Date('2025-01-01T00:00:00Z'), issuerNotAfter: new Date('2026-01-01T00:00:00Z') };
    const now = new Date('2025-06-01T12:00:00.750Z');
    assert.equal(certificateValidity({ now, requestedNotAfter: new Date('2025-06-01T12:00:00.999Z'), ...issuer }), undefined);
    assert.deepEqual(certificateValidity({ now, requestedNotAfter: new Date('2025-06-01T12:00:01.500Z'), ...issuer }), {
      notBefore: new Date('2025-06-01T11:59:40Z'), notAfter: new Date('2025-06-01T12:00:01Z'),
    });
    const whole = new Date('2025-06-01T12:00:00Z');
    assert.equal(certificateValidity({ now: whole, requestedNotAfter: whole, ...issuer }), undefined);
    assert.equal(certificateValidity({ now: whole, requestedNotAfter: new Date('2025-06-01T12:10:00Z'), ...issuer, issuerNotAfter: whole }), undefined);
  });

  it('carry every claim under its own OID, the issuer without trailing slashes in URIs, and no empty value', () => {
    const principal = { ...principalAt(new Date('2025-06-01T12:00:00Z')), iss: 'https://gitlab.example.com//' };
    assert.deepEqual(provenanceOf({ principal }), [
      { oid: '1.3.6.1.4.1.57264.1.8', value: 'https://gitlab.example.com//' },
      { oid: '1.3.6.1.4.1.57264.1.11', value: 'self-hosted' },
      { oid: '1.3.6.1.4.1.57264.1.12', value: 'https://gitlab.example.com/payments/api' },
      { oid: '1.3.6.1.4.1.57264.1.13', value: principal.sha },
      { oid: '1.3.6.1.4.1.57264.1.14', value: 'refs/heads/main' },
      { oid: '1.3.6.1.4.1.57264.1.15', value: '20' },
      { oid: '1.3.6.1.4.1.57264.1.18', value: 'https://gitlab.example.com/payments/api//.gitlab-ci.yml@refs/heads/main' },
      { oid: '1.3.6.1.4.1.57264.1.19', value: principal.sha },
      { oid: '1.3.6.1.4.1.57264.1.20', value: 'push' },
      { oid: '1.3.6.1.4.1.57264.1.21', value: 'https://gitlab.example.com/payments/api/-/jobs/302' },
      { oid: '1.3.6.1.4.1.57264.1.23', value: 'production' },
    ]);
    assert.deepEqual(provenanceOf({ principal: { ...principal, environment: '', ci_config_sha: '' } }).map((entry) => entry.oid.split('.').pop()), ['8', '11', '12', '13', '14', '15', '18', '20', '21']);
  });

  it('are the table of docs/linkerd.md: OID, name and where the value comes from', async () => {
    const rows = tableRows(section(await readDoc('docs/linkerd.md'), 'Provenance extensions (OIDs)'));
    const documented = rows.map(([oid, name, value]) => [oid, name, value]);
    // `iss + "/" + project_path` is written `iss` + `/` + `project_path` in the docs.
    const code = PROVENANCE_FIELDS.map((field) => [field.oid, field.name, field.source.split(' + ').map((part) => `\`${part.replace(/^"|"$/g, '')}\``).join(' + ')]);
    assert.deepEqual(documented, code);
  });
});
