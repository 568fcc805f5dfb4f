/**
 * A real mTLS handshake, as a meshed service sees the CI job: a Node TLS server that trusts only the mesh anchors and
 * requires a client certificate reads the Linkerd identity from the first SAN, and refuses another CA's certificate.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { createEphemeralCa, type EphemeralCa } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { IDENTITY, NAMING, contextAt, minutesAfter, planFor } from './linkerd-fixtures.js';

/** What the Linkerd proxy does: the identity is the first SAN it can parse, DNS or URI. */
function firstSanIdentity(subjectAltName: string | undefined): string | undefined {
  const first = subjectAltName?.split(', ')[0];
  return first?.replace(/^(?:DNS|URI):/, '');
}

async function credentials(ca: EphemeralCa, serviceAccount: string, namespace: string): Promise<{ key: string; cert: string }> {
  const now = new Date();
  const { csrPem, privateKeyPem } = generateKeyAndRequest();
  const issued = await ca.ca.issue(planFor(csrPem, minutesAfter(now, 10), serviceAccount, namespace), contextAt(now));
  return { key: privateKeyPem, cert: issued.certificate + issued.chain };
}

describe('mTLS with a mesh-issued client certificate', () => {
  let mesh: EphemeralCa;
  let server: tls.Server;
  let port: number;
  const rejected: Error[] = [];

  before(async () => {
    mesh = await createEphemeralCa(NAMING);
    const serverCredentials = await credentials(mesh, 'payments', 'payments');
    server = tls.createServer({ ...serverCredentials, ca: mesh.trustAnchorsPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.end(`hello ${firstSanIdentity(socket.getPeerCertificate().subjectaltname) ?? 'nobody'}`);
    });
    server.on('tlsClientError', (err) => rejected.push(err));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  function connect(client: { key: string; cert: string }): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        ...client, host: '127.0.0.1', port, ca: mesh.trustAnchorsPem,
        servername: 'payments.payments.serviceaccount.identity.linkerd.cluster.local',
      });
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
    });
  }

  it('accepts the CI job certificate and reads the identity from the first SAN', async () => {
    assert.equal(await connect(await credentials(mesh, 'deploy-payments', 'ci')), `hello ${IDENTITY}`);
  });

  it('refuses a certificate from another CA with the same identity', async () => {
    const stranger = await createEphemeralCa(NAMING);
    const before = rejected.length;
    const outcome = await connect(await credentials(stranger, 'deploy-payments', 'ci')).then((text) => text, (err: Error) => err);
    assert.ok(outcome instanceof Error || outcome === '', `the server answered: ${String(outcome)}`);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(rejected.length > before, 'the server should report a rejected client certificate');
  });
});
