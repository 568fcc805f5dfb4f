/**
 * Oversized discovery and JWKS documents: an issuer (or whatever answers in its name) that sends megabytes is refused
 * with a coded upstream error after at most 1 MiB is read, whether or not it declares a Content-Length. The same issuer
 * with the same key and a document under the bound verifies, so each refusal is the size and nothing else.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { createIdTokenVerifier, MAX_ISSUER_DOCUMENT_BYTES } from '../src/adapters/gitlab/verifier.js';
import { isBrokerError } from '../src/core/errors.js';
import { defaultIdTokenClaims, generateRsaSigningKey, type SigningKey } from '../src/dev/token-factory.js';

const AUDIENCE = 'https://broker.test';
type Size = 'small' | 'huge';
type Framing = 'declared' | 'chunked';

interface Issuer {
  readonly server: Server;
  readonly base: string;
}

let key: SigningKey;
let issuer: Issuer;

/** The JSON text padded with spaces (still the same JSON) up to `bytes`. */
function padded(value: unknown, bytes: number): string {
  const text = JSON.stringify(value);
  return text + ' '.repeat(Math.max(0, bytes - text.length));
}

async function send(res: ServerResponse, body: string, framing: Framing): Promise<void> {
  res.setHeader('content-type', 'application/json');
  if (framing === 'declared') res.setHeader('content-length', Buffer.byteLength(body));
  // Chunks of 64 KiB, waiting for the socket to drain: a client that stops reading stops the writing.
  const chunk = 64 * 1024;
  for (let offset = 0; offset < body.length; offset += chunk) {
    if (res.destroyed) return;
    if (!res.write(body.slice(offset, offset + chunk))) {
      await new Promise<void>((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    }
  }
  res.end();
}

/** Paths: /<discovery size>/<jwks size>/<framing> is an issuer whose documents have those sizes. */
async function startIssuer(): Promise<Issuer> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const [, discoverySize, jwksSize, framing, ...rest] = url.pathname.split('/') as [string, Size, Size, Framing, ...string[]];
    const issuerUrl = `${base}/${discoverySize}/${jwksSize}/${framing}`;
    const document = rest.join('/');
    const huge = 3 * MAX_ISSUER_DOCUMENT_BYTES;
    if (document === '.well-known/openid-configuration') {
      const discovery = { issuer: issuerUrl, jwks_uri: `${issuerUrl}/oauth/discovery/keys`, id_token_signing_alg_values_supported: ['RS256'] };
      void send(res, padded(discovery, discoverySize === 'huge' ? huge : 0), framing);
    } else if (document === 'oauth/discovery/keys') {
      void send(res, padded({ keys: [key.publicJwk] }, jwksSize === 'huge' ? huge : 0), framing);
    } else {
      res.statusCode = 501;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, base };
}

before(async () => {
  key = await generateRsaSigningKey('key-1');
  issuer = await startIssuer();
});
after(async () => {
  issuer.server.closeAllConnections();
  await new Promise((resolve) => issuer.server.close(resolve));
});

async function verifyAgainst(discoverySize: Size, jwksSize: Size, framing: Framing): Promise<{ ok: true } | { ok: false; code: string; detail: string }> {
  const iss = `${issuer.base}/${discoverySize}/${jwksSize}/${framing}`;
  // A generous deadline: on a loaded machine a timeout must not stand in for the size refusal this test is about.
  const verifier = createIdTokenVerifier({ issuers: [{ issuer: iss, audience: AUDIENCE, apiUrl: `${iss}/api/v4`, maxTokenAgeSeconds: 3600 }], timeoutMs: 60_000 });
  const token = await new SignJWT(defaultIdTokenClaims({ issuer: iss, audience: AUDIENCE }))
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
    .sign(key.privateKey);
  try {
    await verifier.verify(token, new Date());
    return { ok: true };
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    return { ok: false, code: err.code, detail: err.detail };
  }
}

describe('issuer documents are read up to 1 MiB', () => {
  for (const framing of ['declared', 'chunked'] as const) {
    it(`verifies against small documents (${framing})`, async () => {
      assert.deepEqual(await verifyAgainst('small', 'small', framing), { ok: true });
    });

    it(`refuses a 3 MiB JWKS as upstream_unavailable (${framing})`, async () => {
      assert.deepEqual(await verifyAgainst('small', 'huge', framing), { ok: false, code: 'upstream_unavailable', detail: 'the issuer key set is larger than 1 MiB' });
    });

    it(`refuses a 3 MiB discovery document as upstream_unavailable (${framing})`, async () => {
      assert.deepEqual(await verifyAgainst('huge', 'small', framing), { ok: false, code: 'upstream_unavailable', detail: 'the issuer discovery document is larger than 1 MiB' });
    });
  }
});
