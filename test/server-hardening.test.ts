/**
 * The listener's own defences, over real sockets: security headers on every response (refusals and the raw answers to
 * malformed HTTP included), a client trickling its body cut at server.requestTimeout, an idle keep-alive connection
 * closed at server.keepAliveTimeout, and a connection closed after server.maxRequestsPerSocket requests. Bounds are
 * asserted loosely (Node checks deadlines once a second); each is far below the default it replaces.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

interface RawConnection {
  readonly socket: Socket;
  /** Everything the broker sent so far. */
  text(): string;
  /** Resolves with the time the broker took to close, measured from `since()`, or Infinity after `limitMs`. */
  closedWithin(limitMs: number): Promise<number>;
  /** Resolves once the received text satisfies `check`. */
  until(check: (text: string) => boolean): Promise<void>;
  /** Restarts the clock `closedWithin` measures from. */
  since(): void;
}

function openRaw(url: string): RawConnection {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  socket.setEncoding('utf8');
  socket.on('error', () => undefined); // a reset after the cut is fine
  let received = '';
  let startedAt = performance.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: string) => {
    received += chunk;
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    socket,
    text: () => received,
    since: () => void (startedAt = performance.now()),
    async closedWithin(limitMs) {
      const limit = new Promise<number>((resolve) => setTimeout(() => resolve(Number.POSITIVE_INFINITY), limitMs).unref());
      return (await Promise.race([closed, limit])) - startedAt;
    },
    async until(check) {
      const deadline = performance.now() + 5000;
      while (!check(received)) {
        assert.ok(performance.now() < deadline, `no such answer within 5 s; got: ${received}`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), closed, new Promise((resolve) => setTimeout(resolve, 100))]);
      }
    },
  };
}

/** Waits for the denied invalid_request record of the request that carried `token`. */
async function eventuallyAudited(h: Harness, token: string): Promise<void> {
  const tokenSha256 = createHash('sha256').update(token).digest('hex');
  const deadline = performance.now() + 5000;
  for (;;) {
    const records = (await h.auditRecords()).filter((record) => record.tokenSha256 === tokenSha256);
    if (records.length > 0) return assert.deepEqual(records.map((record) => [record.outcome, record.code]), [['denied', 'invalid_request']]);
    assert.ok(performance.now() < deadline, 'no audit record of the cut request');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const count = (text: string, part: string) => text.split(part).length - 1;
const HEALTHZ_REQUEST = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

function assertSecurityHeaders(headers: Headers | Record<string, string>, what: string): void {
  const get = (name: string) => (headers instanceof Headers ? headers.get(name) : headers[name]) ?? undefined;
  assert.equal(get('x-content-type-options'), 'nosniff', what);
  assert.equal(get('x-frame-options'), 'DENY', what);
  assert.equal(get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'", what);
  assert.equal(get('referrer-policy'), 'no-referrer', what);
  assert.equal(get('x-powered-by'), undefined, what);
  assert.equal(get('strict-transport-security'), undefined, `${what}: HSTS belongs to the TLS proxy`);
}

/** The header block of a raw response, names lower-cased. */
function rawHeaders(text: string): Record<string, string> {
  const lines = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n').slice(1);
  return Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
}

describe('server hardening', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ server: 'requestTimeout: 2s, keepAliveTimeout: 1s, maxRequestsPerSocket: 2', limits: 'headersTimeout: 1s' });
  });
  after(() => h.close());

  it('sends the security headers on successes, refusals, 404s and the operational routes, and no-store unless a route may be cached', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    const cases = [
      ['an exchange', await h.exchange(token), 200],
      ['a replayed token', await h.exchange(token), 409],
      ['no token', await h.call('/v1/exchange', { body: { grants: { token: {} } } }), 401],
      ['an unknown route', await h.call('/no/such/route'), 404],
      ['a malformed explain', await h.call('/v1/explain', { token, body: '{' }), 400],
      ['healthz', await h.call('/healthz'), 200],
      ['readyz', await h.call('/readyz'), 200],
      ['metrics', await h.call('/metrics'), 200],
    ] as const;
    for (const [what, result, status] of cases) {
      assert.equal(result.status, status, `${what}: ${result.text}`);
      assertSecurityHeaders(result.headers, what);
      assert.equal(result.headers.get('cache-control'), 'no-store', what);
    }
    const keys = await h.call('/.well-known/jwks.json');
    assertSecurityHeaders(keys.headers, 'the JWKS');
    assert.equal(keys.headers.get('cache-control'), 'public, max-age=300');
  });

  for (const [what, request, status] of [
    ['malformed HTTP', 'NOT HTTP AT ALL\r\n\r\n', 400],
    ['headers past the size limit', `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, 413],
  ] as const) {
    it(`answers ${what} before any route with ${status} and the security headers`, async () => {
      const raw = openRaw(h.url);
      raw.socket.write(request);
      assert.notEqual(await raw.closedWithin(5000), Number.POSITIVE_INFINITY);
      assert.match(raw.text(), new RegExp(`^HTTP/1\\.1 ${status} `));
      assertSecurityHeaders(rawHeaders(raw.text()), what);
    });
  }

  it('cuts a client that trickles its body at server.requestTimeout (2 s), answering 408, while others are served', async () => {
    const raw = openRaw(h.url);
    const body = JSON.stringify({ grants: { token: {} } });
    const token = await h.gitlab.token(AUDIENCE);
    raw.socket.write(`POST /v1/exchange HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    raw.since();
    let sent = 0;
    const trickle = setInterval(() => raw.socket.writable && sent < body.length - 1 && raw.socket.write(body[sent++] as string), 150);
    try {
      assert.equal((await h.call('/healthz')).status, 200);
      const elapsed = await raw.closedWithin(8000);
      assert.ok(elapsed >= 1500 && elapsed < 6000, `the trickling client was cut after ${Math.round(elapsed)} ms`);
      assert.match(raw.text(), /^HTTP\/1\.1 408 /);
      assertSecurityHeaders(rawHeaders(raw.text()), 'the 408');
      // The cut request minted nothing and left its refusal in the audit log.
      await eventuallyAudited(h, token);
    } finally {
      clearInterval(trickle);
      raw.socket.destroy();
    }
  });

  it('closes an idle keep-alive connection at server.keepAliveTimeout (1 s)', async () => {
    const raw = openRaw(h.url);
    raw.socket.write(HEALTHZ_REQUEST);
    await raw.until((text) => text.includes('{"status":"ok"}'));
    raw.since();
    assert.match(raw.text(), /\r\nConnection: keep-alive\r\n/i);
    const elapsed = await raw.closedWithin(8000); // Node waits a second past the advertised timeout
    raw.socket.destroy();
    assert.ok(elapsed >= 500 && elapsed < 3500, `the idle connection was closed after ${Math.round(elapsed)} ms`);
  });

  it('closes a connection after server.maxRequestsPerSocket (2) requests', async () => {
    const raw = openRaw(h.url);
    raw.socket.write(HEALTHZ_REQUEST);
    await raw.until((text) => count(text, '{"status":"ok"}') === 1);
    assert.match(raw.text(), /\r\nConnection: keep-alive\r\n/i);
    raw.socket.write(HEALTHZ_REQUEST);
    await raw.until((text) => count(text, '{"status":"ok"}') === 2);
    raw.since();
    const second = raw.text().slice(raw.text().lastIndexOf('HTTP/1.1 '));
    assert.match(second, /\r\nConnection: close\r\n/i);
    // At once, not at the keep-alive timeout (1 s, closed after 2 s), where Node's own maxRequestsPerSocket leaves it.
    const elapsed = await raw.closedWithin(3000);
    raw.socket.destroy();
    assert.ok(elapsed < 1500, `the connection was closed ${Math.round(elapsed)} ms after its last answer`);
  });
});
