/**
 * The one HTTP entry: request ids and metrics for every route, the bearer scheme read case-insensitively, the client
 * address as express's `trust proxy` decides it, and slow-header clients cut at limits.headersTimeout.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { clientAddress } from '../src/http/entry.js';
import { waitForAudit } from './support/assertions.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

describe('the HTTP entry', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: 'headersTimeout: 1s' });
  });
  after(() => h.close());

  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    it(`reads the "${scheme}" scheme as Bearer (case-insensitive, RFC 9110)`, async () => {
      const result = await h.call('/v1/exchange', { headers: { authorization: `${scheme} ${await h.gitlab.token(AUDIENCE)}` }, body: { grants: { token: {} } } });
      assert.equal(result.status, 200, result.text);
    });
  }

  it('reads another scheme as no token', async () => {
    const result = await h.call('/v1/exchange', { headers: { authorization: `Basic ${await h.gitlab.token(AUDIENCE)}` }, body: { grants: { token: {} } } });
    assert.equal(result.status, 401);
    assert.equal(result.body.code, 'invalid_token');
  });

  it('gives every route one server-generated request id: header, problem+json and audit record agree', async () => {
    const exchanged = await h.exchange(await h.gitlab.token(AUDIENCE), { nope: {} });
    const id = exchanged.headers.get('x-request-id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(exchanged.body.requestId, id);
    assert.equal((await waitForAudit(h, id ?? '')).length, 1);
    const missing = await h.call('/no/such/route', { headers: { 'x-request-id': 'caller-chosen' } });
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(missing.body.requestId, missing.headers.get('x-request-id'));
    assert.notEqual(missing.body.requestId, id);
  });

  it('counts every route in the same metrics', async () => {
    await h.call('/healthz');
    await h.call('/no/such/route');
    const text = (await h.call('/metrics')).text;
    assert.match(text, /oidc_broker_requests_total\{endpoint="other",code="ok",rule=""\} [1-9]/);
    assert.match(text, /oidc_broker_requests_total\{endpoint="other",code="not_found",rule=""\} [1-9]/);
    assert.match(text, /oidc_broker_requests_total\{endpoint="\/v1\/exchange",code="invalid_request",rule=""\} [1-9]/);
  });

  // Node checks header deadlines once a second here; the old fixed 10 s deadline, checked every 30 s, held it far longer.
  it('cuts a client that dribbles its headers at limits.headersTimeout (1 s), while others are served', async () => {
    const { port } = new URL(h.url);
    const socket = connect(Number(port), '127.0.0.1');
    const started = performance.now();
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', () => undefined); // a reset after the cut is fine
    socket.write('POST /v1/exchange HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const dribble = setInterval(() => socket.writable && socket.write('a'), 100);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - started)));
    const limit = new Promise<number>((resolve) => setTimeout(() => resolve(Number.POSITIVE_INFINITY), 8000).unref());
    assert.equal((await h.call('/healthz')).status, 200);
    const elapsed = await Promise.race([closed, limit]);
    clearInterval(dribble);
    socket.destroy();
    assert.ok(elapsed >= 900 && elapsed < 6000, `the slow client was cut after ${Math.round(elapsed)} ms`);
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });
});

describe('the client address', () => {
  let server: Server;
  let url: string;
  const app = express();
  before(async () => {
    server = createServer((req, res) => res.end(clientAddress(req, app)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const forwarded = { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' };

  it('is the socket peer unless trust proxy is set', async () => {
    app.set('trust proxy', false);
    assert.equal(await (await fetch(url, { headers: forwarded })).text(), '127.0.0.1');
  });

  it('is the nearest untrusted X-Forwarded-For entry behind a trusted proxy', async () => {
    app.set('trust proxy', 'loopback');
    assert.equal(await (await fetch(url, { headers: forwarded })).text(), '198.51.100.7');
    app.set('trust proxy', false);
  });

  it('is bounded and printable whatever a trusted-everything setting passes on', async () => {
    app.set('trust proxy', true);
    const text = await (await fetch(url, { headers: { 'x-forwarded-for': 'z'.repeat(4000) } })).text();
    app.set('trust proxy', false);
    assert.ok(text.length < 100, `${text.length} characters`);
  });
});
