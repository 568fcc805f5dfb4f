/**
 * `node dist/bench/gitlab-transport-cpu.js`: the client-side CPU of one job lookup (`GET /api/v4/projects/:id/jobs/:id`,
 * 16 at a time) through the broker's GitLab transport (`http-get.ts`: undici `Pool.dispatch`, chunks kept and parsed
 * once), beside the same GET through undici's `Pool.request` read with `body.text()` and through `http.request` on a
 * keep-alive agent. The stand-in GitLab runs in a child process so only the client side is counted. Alternating
 * rounds; reports µs of CPU (user + system of this process) per GET and each alternative's ratio to the transport.
 */
import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { createTransport, targetOf } from '../src/adapters/gitlab/http-get.js';
import { startStandIn } from './standin.js';
import { cpuPerCall } from './harness.js';

const PER_ROUND = 4000;
const ROUNDS = 5;
const CONCURRENCY = 16;
const JOB_PATH = '/api/v4/projects/42/jobs/7';
const HEADERS = { 'private-token': 'bench-token', accept: 'application/json' };

async function standInChild(): Promise<void> {
  const standIn = await startStandIn({ kty: 'RSA', n: 'AQAB', e: 'AQAB' });
  process.send?.({ issuer: standIn.issuer });
  process.once('disconnect', () => void standIn.close());
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--stand-in']);
  const { issuer } = await new Promise<{ issuer: string }>((resolve) => child.once('message', (m) => resolve(m as { issuer: string })));
  const url = new URL(JOB_PATH, issuer);
  const transport = createTransport();
  const target = targetOf(url);
  const pool = new Pool(url.origin, { connections: 64, maxResponseSize: 8 * 1024 * 1024, keepAliveTimeout: 4_000 });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const viaTransport = (): Promise<unknown> => transport.getJson(target, HEADERS, 5_000, AbortSignal.timeout(5_000));
  const viaRequest = async (): Promise<unknown> => {
    const res = await pool.request({ method: 'GET', path: JOB_PATH, headers: HEADERS, headersTimeout: 5_000, bodyTimeout: 5_000, signal: AbortSignal.timeout(5_000) });
    return JSON.parse(await res.body.text());
  };
  const viaNodeHttp = (): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: JOB_PATH, agent, headers: HEADERS, signal: AbortSignal.timeout(5_000) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      });
      req.on('error', reject);
      req.end();
    });

  for (let i = 0; i < 300; i += 1) await Promise.all([viaTransport(), viaRequest(), viaNodeHttp()]); // warm-up: JIT, sockets
  const results: { transport: number; request: number; http: number }[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    results.push({ transport: await cpuPerCall(CONCURRENCY, PER_ROUND, viaTransport), request: await cpuPerCall(CONCURRENCY, PER_ROUND, viaRequest), http: await cpuPerCall(CONCURRENCY, PER_ROUND, viaNodeHttp) });
  }
  for (const [i, r] of results.entries()) {
    console.log(
      `round ${i + 1}: transport (Pool.dispatch) ${r.transport.toFixed(1)} µs CPU/GET, Pool.request + body.text ${r.request.toFixed(1)} µs (${(r.request / r.transport).toFixed(2)}×), node:http keep-alive ${r.http.toFixed(1)} µs (${(r.http / r.transport).toFixed(2)}×)`,
    );
  }
  await Promise.all([transport.close(), pool.destroy()]);
  agent.destroy();
  child.disconnect();
}

if (process.argv.includes('--stand-in')) await standInChild();
else await main();
