/**
 * The GitLab transport (http-get.ts) against a real HTTP server on loopback: how it reads answers (length-delimited,
 * chunked, after an informational 1xx), how every answer it must not trust fails with its failure kind, and that it
 * verifies the server's certificate over TLS.
 */
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createTransport, GitLabApiError, targetOf, type JsonResponse } from '../src/adapters/gitlab/http-get.js';

type Route = (req: IncomingMessage, res: ServerResponse) => void;

const NINE_MIB = 9 * 1024 * 1024;

const routes: Record<string, Route> = {
  '/length': (_req, res) => {
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.setHeader('__proto__', 'just-a-header');
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Total': '3', Link: '<next>; rel="next"' }).end('{"status":"running"}');
  },
  '/chunked': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"status":');
    setTimeout(() => res.end('"running","names":["é"]}'), 20);
  },
  '/hints': (_req, res) => {
    res.writeEarlyHints({ link: '</x>; rel=preload' });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  },
  '/huge': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const block = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const more = (): void => {
      while (sent < NINE_MIB) {
        sent += block.length;
        if (!res.write(block)) return void res.once('drain', more);
      }
      res.end('{}');
    };
    more();
  },
  '/redirect': (_req, res) => {
    res.writeHead(302, { Location: '/elsewhere', 'Content-Type': 'application/json' }).end('{}');
  },
  '/limited': (_req, res) => {
    res.writeHead(429, { 'Retry-After': '7', 'Content-Type': 'application/json' }).end('{"message":"slow down"}');
  },
  '/html': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html></html>');
  },
  '/broken-json': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":');
  },
  '/close': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', Connection: 'close' }).end('{"closed":true}');
  },
  '/silent': () => {
    // never answers
  },
};

describe('GitLab transport (http-get.ts)', () => {
  let server: Server;
  let base: string;
  const hits = new Map<string, number>();
  const headersSeen: IncomingMessage['headers'][] = [];
  const transport = createTransport();

  before(async () => {
    server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] as string;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      headersSeen.push(req.headers);
      const route = routes[path];
      if (route) route(req, res);
      else res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"404 Not found"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await transport.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const get = (path: string, timeoutMs = 3_000, signal?: AbortSignal): Promise<JsonResponse> =>
    transport.getJson(targetOf(new URL(`${base}${path}`)), { 'private-token': 'glpat-secret', accept: 'application/json' }, timeoutMs, signal);

  async function failure(promise: Promise<unknown>): Promise<GitLabApiError> {
    const error = await promise.then(() => assert.fail('resolved'), (reason: unknown) => reason);
    assert.ok(error instanceof GitLabApiError, String(error));
    assert.ok(!JSON.stringify({ message: error.message, cause: error.cause }).includes('glpat-secret'), 'the token is not in the error');
    return error;
  }

  it('reads a length-delimited answer, its headers lowercased, repeated ones joined, and sends our headers', async () => {
    const response = await get('/length?page=2');
    assert.deepEqual(response.body, { status: 'running' });
    assert.equal(response.status, 200);
    assert.equal(response.headers['x-total'], '3');
    assert.equal(response.headers.link, '<next>; rel="next"');
    assert.equal(response.headers['set-cookie'], 'a=1, b=2');
    assert.ok(Object.hasOwn(response.headers, '__proto__'), 'a header named __proto__ is an own entry, not a prototype');
    assert.equal(response.headers.__proto__, 'just-a-header');
    const seen = headersSeen[headersSeen.length - 1];
    assert.equal(seen?.['private-token'], 'glpat-secret');
    assert.equal(seen?.accept, 'application/json');
  });

  it('reads a chunked answer split across writes, as UTF-8', async () => {
    assert.deepEqual((await get('/chunked')).body, { status: 'running', names: ['é'] });
  });

  it('skips an informational 103 and reads the answer after it', async () => {
    assert.deepEqual((await get('/hints')).body, { ok: true });
  });

  it('refuses a body over 8 MiB as not JSON', async () => {
    const error = await failure(get('/huge', 10_000));
    assert.equal(error.failure, 'not_json');
  });

  it('refuses a redirect without following it', async () => {
    const error = await failure(get('/redirect'));
    assert.equal(error.failure, 'unreachable');
    assert.equal(error.status, 302);
    assert.equal(hits.get('/elsewhere'), undefined, 'the Location was never requested');
  });

  it('keeps the status and Retry-After of an error answer, but no query string', async () => {
    const error = await failure(get('/limited?private_token=glpat-secret'));
    assert.equal(error.failure, 'status');
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterSeconds, 7);
    assert.equal(error.path, '/limited');
  });

  it('refuses an answer that is not JSON by type or by content', async () => {
    assert.equal((await failure(get('/html'))).failure, 'not_json');
    assert.equal((await failure(get('/broken-json'))).failure, 'not_json');
  });

  it('goes on after the server closes a connection, and after error answers', async () => {
    assert.deepEqual((await get('/close')).body, { closed: true });
    for (let i = 0; i < 3; i++) assert.deepEqual((await get('/length')).body, { status: 'running' });
  });

  it('times out when the headers never come', async () => {
    const started = performance.now();
    const error = await failure(get('/silent', 300));
    assert.equal(error.failure, 'timeout');
    assert.ok(performance.now() - started < 2_500, 'bounded by the timeout');
  });

  it('stops at once when the caller aborts, and at once when the signal was already aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    assert.equal((await failure(get('/silent', 10_000, controller.signal))).failure, 'timeout');
    assert.ok(performance.now() - started < 1_000);
    const before = hits.get('/length') ?? 0;
    assert.equal((await failure(get('/length', 3_000, AbortSignal.abort()))).failure, 'timeout');
    assert.equal(hits.get('/length') ?? 0, before, 'nothing was sent');
  });

  it('fails as unreachable when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(transport.getJson(targetOf(new URL(`http://127.0.0.1:${port}/x`)), {}, 3_000));
    assert.equal(error.failure, 'unreachable');
  });
});

describe('GitLab transport over TLS', () => {
  // A child process, because Node reads NODE_EXTRA_CA_CERTS once at start: the way an operator trusts a private CA.
  const transport = new URL('../src/adapters/gitlab/http-get.js', import.meta.url).href;
  const probe = `
    const { createTransport, targetOf, GitLabApiError } = await import(${JSON.stringify(transport)});
    const transport = createTransport();
    try {
      const response = await transport.getJson(targetOf(new URL(process.argv[1])), { accept: 'application/json' }, 5000);
      console.log(JSON.stringify({ body: response.body }));
    } catch (err) {
      console.log(JSON.stringify({ failure: err instanceof GitLabApiError ? err.failure : String(err), cause: err.cause?.message }));
    } finally {
      await transport.close();
    }`;
  let dir: string;
  let server: HttpsServer;
  let url: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gitlab-tls-'));
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    server = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"running"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/api/v4/projects/1/jobs/2`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function run(env: NodeJS.ProcessEnv): Promise<{ body?: unknown; failure?: string; cause?: string }> {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe, url], { env });
    return JSON.parse(stdout) as { body?: unknown; failure?: string; cause?: string };
  }

  it('reads the answer when the server certificate chains to a trusted CA', async () => {
    assert.deepEqual(await run({ ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') }), { body: { status: 'running' } });
  });

  it('refuses a server certificate that nothing trusts, as unreachable', async () => {
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const result = await run(env);
    assert.equal(result.failure, 'unreachable');
    assert.match(result.cause ?? '', /self[- ]signed|certificate/i);
  });
});
