/**
 * `oidc-broker serve` as a real child process, stopped with real signals: SIGTERM in the middle of a burst of exchanges
 * (held in their job lookup by the stand-in GitLab) answers every accepted request in full, refuses new connections,
 * closes idle ones, reports not ready on a connection still open, writes every audit record and exits 0; a second SIGTERM during a drain
 * that cannot finish exits at once; and the drain ends at server.shutdownGrace.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { CLI_BIN, REPO_ROOT } from './support/cli-run.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { AUDIENCE, CORE_POLICY } from './support/policies.js';

const JOB_LOOKUP = '/api/v4/projects/:n/jobs/:n';

interface ServeProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** The operational log lines (JSON on stderr) so far. */
  lines(): Array<Record<string, unknown>>;
  waitForLine(message: string): Promise<void>;
  /** Resolves with the exit code (or signal name) and when it came. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function eventually(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startServe(dir: string, gitlab: StandInGitLab, shutdownGrace: string): Promise<ServeProcess> {
  await writeFile(join(dir, 'broker.yaml'), [
    `server: { host: 127.0.0.1, port: 0, publicUrl: ${AUDIENCE}, shutdownGrace: ${shutdownGrace} }`,
    `gitlab:\n  - { issuer: "${gitlab.issuer}", audience: ${AUDIENCE}, apiTokenFile: gitlab-token }`,
    'policy: { path: policy, watch: false }',
    'audit: { file: audit.log }',
    'signing: { keysFile: signing.jwks.json }',
    'limits: { factTimeout: 30s }',
    '',
  ].join('\n'));
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--config', join(dir, 'broker.yaml')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })));
  let raw = '';
  child.stderr?.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  const lines = () => raw.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  const waitForLine = (message: string) => eventually(() => lines().some((line) => line.message === message), `"${message}" in the log:\n${raw}`);
  await waitForLine('listening');
  const url = String(lines().find((line) => line.message === 'listening')?.url);
  return { child, url, port: Number(new URL(url).port), lines, waitForLine, exited };
}

/** Whether a new TCP connection to `port` is refused. */
function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A connection whose request headers are still arriving (a request in progress, so the drain waits for it) until the test ends them. */
function halfSentRequest(port: number, path: string): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => undefined);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
  return { socket, received: () => received, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

describe('oidc-broker serve: SIGTERM', () => {
  let gitlab: StandInGitLab;
  let dir: string;
  const started: ChildProcess[] = [];

  before(async () => {
    gitlab = await startGitLab();
    gitlab.setJob('20', '302', 'running');
    dir = await mkdtemp(join(tmpdir(), 'oidc-broker-shutdown-'));
    await mkdir(join(dir, 'policy'));
    await writeFile(join(dir, 'policy', '10-core.yaml'), CORE_POLICY);
    await writeFile(join(dir, 'gitlab-token'), `${API_TOKEN}\n`, { mode: 0o600 });
    await writeFile(join(dir, 'signing.jwks.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o600 });
  });
  after(async () => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await gitlab.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers every exchange accepted before SIGTERM in full, refuses new connections, audits each and exits 0', async () => {
    const burst = 10;
    gitlab.faults.jobsDelayMs = 3000; // every exchange waits in its job lookup when the signal comes
    const serve = await startServe(dir, gitlab, '20s');
    started.push(serve.child);
    const arriving = halfSentRequest(serve.port, '/readyz'); // completed only after the signal
    const idle = halfSentRequest(serve.port, '/healthz');
    idle.socket.write('\r\n');
    await eventually(() => idle.received().includes('"status":"ok"'), 'an idle keep-alive connection');
    let answered = 0;
    const exchanges = await Promise.all(Array.from({ length: burst }, () => gitlab.token(AUDIENCE)));
    const responses = exchanges.map(async (token) => {
      const response = await fetch(`${serve.url}/v1/exchange`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"grants":{"token":{}}}' });
      const body = (await response.json()) as Record<string, unknown>;
      answered++;
      return { status: response.status, requestId: response.headers.get('x-request-id'), body };
    });
    await eventually(() => gitlab.hitCount(JOB_LOOKUP) === burst, `${burst} job lookups at the stand-in`);

    serve.child.kill('SIGTERM');
    await serve.waitForLine('stopping: no new connections, finishing requests in flight');
    assert.equal(answered, 0, 'the signal came in the middle of the burst');
    assert.equal(await connectionRefused(serve.port), true, 'a new connection after SIGTERM is refused');
    // Closed now, not at the keep-alive timeout (5 s).
    assert.notEqual(await Promise.race([idle.closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 2500, 'open'))]), 'open', 'the idle connection was closed');
    arriving.socket.write('\r\n');
    await arriving.closed;
    assert.match(arriving.received(), /^HTTP\/1\.1 503 /);
    assert.match(arriving.received(), /\r\nConnection: close\r\n/i);
    assert.match(arriving.received(), /"accepting":false/);

    const results = await Promise.all(responses);
    for (const result of results) {
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(typeof (result.body.grants as { token?: { token?: unknown } }).token?.token, 'string');
    }
    const { code, signal } = await serve.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    const records = (await readFile(join(dir, 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    const answeredIds = results.map((result) => result.requestId).sort();
    assert.deepEqual(records.filter((record) => record.phase === 'result').map((record) => record.requestId).sort(), answeredIds, 'one result record per answered exchange');
    assert.deepEqual([...new Set(records.map((record) => record.requestId))].sort(), answeredIds, 'no record of any other request');
  });

  it('exits at once on a second SIGTERM while the drain waits, with 143', async () => {
    const serve = await startServe(dir, gitlab, '60s');
    started.push(serve.child);
    const slow = halfSentRequest(serve.port, '/healthz'); // never completes: the drain would wait the full minute
    await eventually(() => slow.socket.readyState === 'open', 'the connection');
    serve.child.kill('SIGTERM');
    await serve.waitForLine('stopping: no new connections, finishing requests in flight');
    const sentAt = performance.now();
    serve.child.kill('SIGTERM');
    const { code, at } = await serve.exited;
    slow.socket.destroy();
    assert.equal(code, 143);
    assert.ok(at - sentAt < 5000, `exited ${Math.round(at - sentAt)} ms after the second signal`);
    assert.ok(serve.lines().some((line) => line.message === 'second stop signal: exiting without waiting for requests in flight'));
  });

  it('cuts what is still open at server.shutdownGrace (1 s), says so, and exits 0', async () => {
    const serve = await startServe(dir, gitlab, '1s');
    started.push(serve.child);
    const slow = halfSentRequest(serve.port, '/healthz');
    await eventually(() => slow.socket.readyState === 'open', 'the connection');
    const sentAt = performance.now();
    serve.child.kill('SIGTERM');
    const { code, at } = await serve.exited;
    await slow.closed;
    assert.equal(code, 0);
    assert.ok(at - sentAt >= 900 && at - sentAt < 8000, `exited ${Math.round(at - sentAt)} ms after SIGTERM`);
    assert.ok(serve.lines().some((line) => line.message === 'shutdown grace passed; cutting the connections still open'));
  });
});
