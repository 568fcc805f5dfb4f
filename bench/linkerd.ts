/**
 * Linkerd certificate issuance, ours beside cfssl's, in one bounded run (~30 s):
 * 1. our CA's issue() in a loop in-process (CSR parse + proof of possession + leaf + signature): certificates/s on one core;
 * 2. our CA behind a bare node:http JSON endpoint, in a child pinned to one core (taskset), loaded by autocannon;
 * 3. `cfssl serve` (Debian golang-cfssl) pinned to the same core with GOMAXPROCS=1, its /api/v1/cfssl/sign endpoint
 *    with the same P-256 CSR. Debian's cfssl cannot add the URI SAN (it signs one DNS SAN, no provenance): less work than ours.
 * The load generator runs on the other core. Run: `npx tsc -p . && node dist/bench/linkerd.js` (~35 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createEphemeralCa, generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { parsePrincipal, subjectOf } from '../src/core/claims.js';
import type { CertificateAuthority, MintContext } from '../src/ports.js';

export const NAMING = { trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' } as const;
export const IDENTITY = 'deploy.ci.serviceaccount.identity.linkerd.cluster.local';
export const SPIFFE_ID = 'spiffe://cluster.local/ns/ci/sa/deploy';
const SERVER_CORE = '1';

function contextAt(now: Date): MintContext {
  const iat = Math.floor(now.getTime() / 1000);
  const principal = parsePrincipal({
    iss: 'https://gitlab.example.com', sub: 'project_path:payments/api:ref_type:branch:ref:main', jti: 'bench', aud: 'b',
    iat, exp: iat + 3600, namespace_id: '7', namespace_path: 'payments', project_id: '20', project_path: 'payments/api',
    user_id: '3', user_login: 'alice', pipeline_id: '574', pipeline_source: 'push', job_id: '302', ref: 'main', ref_type: 'branch',
    ref_path: 'refs/heads/main', ref_protected: 'true', sha: '714a3c0c0e2f0a8e5b1c9d7f6e5d4c3b2a190817', environment: 'production',
  }, 'b');
  return { requestId: 'bench', rule: 'bench', subject: subjectOf(principal), principal, now };
}

async function issueOnce(ca: CertificateAuthority, csr: string): Promise<string> {
  const now = new Date();
  const plan = { kind: 'linkerd', serviceAccount: 'deploy', namespace: 'ci', csr, notAfter: new Date(now.getTime() + 600_000) } as const;
  return (await ca.issue(plan, contextAt(now))).certificate;
}

export interface IsolatedResult {
  readonly certificates: number;
  readonly perSecond: number;
  readonly microsecondsEach: number;
}

/** issue() in a loop on this thread: the CA's own cost per certificate. */
export async function benchCaIsolated(durationMs = 3000): Promise<IsolatedResult> {
  const { ca } = await createEphemeralCa(NAMING);
  const csrs = Array.from({ length: 64 }, () => generateKeyAndRequest().csrPem);
  for (let i = 0; i < 500; i++) await issueOnce(ca, csrs[i % csrs.length] as string); // warm-up (JIT)
  let certificates = 0;
  const start = performance.now();
  while (performance.now() - start < durationMs) {
    for (let i = 0; i < 100; i++) await issueOnce(ca, csrs[certificates++ % csrs.length] as string);
  }
  const seconds = (performance.now() - start) / 1000;
  return { certificates, perSecond: certificates / seconds, microsecondsEach: (seconds * 1e6) / certificates };
}

export interface HttpResult {
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

async function load(url: string, body: string, seconds: number): Promise<HttpResult> {
  await autocannon({ url, connections: 8, duration: 1, requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body }] });
  const result = await autocannon({ url, connections: 16, duration: seconds, requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, body }] });
  return { perSecond: result['2xx'] / result.duration, p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.non2xx + result.errors + result.timeouts };
}

function pinned(command: string, args: string[], env: NodeJS.ProcessEnv = {}, core: string = SERVER_CORE): ChildProcess {
  return spawn('taskset', ['-c', core, command, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function firstLine(child: ChildProcess): Promise<string> {
  const [chunk] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  return chunk.toString('utf8').split('\n')[0] ?? '';
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  return port;
}

async function waitUntilSigning(url: string, body: string, deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const ok = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error(`${url} did not start signing`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface CfsslServer {
  /** The sign endpoint, http://127.0.0.1:PORT/api/v1/cfssl/sign. */
  readonly url: string;
  /** cfssl's own pid (taskset execs it), for reading its CPU time from /proc. */
  readonly pid: number;
  /** The JSON body for its sign endpoint with this CSR (the DNS identity only: see below). */
  signBody(csr: string): string;
  stop(): void;
}

/**
 * `cfssl serve` on loopback with a fresh P-256 issuer, pinned to `core` with GOMAXPROCS=1; resolves once it signs.
 * Debian's cfssl 1.2.0 would put the SPIFFE URI in as a DNS name, so it gets the DNS identity only.
 */
export async function startCfssl(csr: string, core: string = SERVER_CORE): Promise<CfsslServer> {
  const dir = mkdtempSync(join(tmpdir(), 'cfssl-bench-'));
  const material = await generateCaMaterial({ ...NAMING });
  writeFileSync(join(dir, 'issuer.pem'), material.issuerCertPem);
  writeFileSync(join(dir, 'issuer.key'), material.issuerKeyPem);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ signing: { default: { expiry: '1h', usages: ['digital signature', 'key encipherment', 'server auth', 'client auth'] } } }));
  const port = await freePort();
  const child = pinned('cfssl', ['serve', '-address', '127.0.0.1', '-port', String(port), '-ca', join(dir, 'issuer.pem'), '-ca-key', join(dir, 'issuer.key'), '-config', join(dir, 'config.json'), '-loglevel', '5'], { GOMAXPROCS: '1' }, core);
  const stop = () => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}/api/v1/cfssl/sign`;
  const signBody = (request: string) => JSON.stringify({ certificate_request: request, hosts: [IDENTITY] });
  try {
    await waitUntilSigning(url, signBody(csr));
  } catch (err) {
    stop();
    throw err;
  }
  return { url, pid: child.pid as number, signBody, stop };
}

/** cfssl serve on loopback, pinned to one core, with a fresh P-256 issuer. */
export async function benchCfssl(csr: string, seconds = 5): Promise<HttpResult> {
  const cfssl = await startCfssl(csr);
  try {
    return await load(cfssl.url, cfssl.signBody(csr), seconds);
  } finally {
    cfssl.stop();
  }
}

/** Our CA behind a minimal JSON endpoint in a child pinned to one core, so the HTTP cost is comparable to cfssl's. */
export async function benchCaOverHttp(csr: string, seconds = 5): Promise<HttpResult> {
  const child = pinned(process.execPath, [fileURLToPath(import.meta.url), 'serve-ca']);
  try {
    const url = (JSON.parse(await firstLine(child)) as { url: string }).url;
    const body = JSON.stringify({ csr });
    await waitUntilSigning(url, body);
    return await load(url, body, seconds);
  } finally {
    child.kill('SIGTERM');
  }
}

async function serveCa(): Promise<void> {
  const { ca } = await createEphemeralCa(NAMING);
  // Plain 'data'/'end' events: an async iterator over the request costs more than the body it reads.
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      issueOnce(ca, (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { csr: string }).csr).then(
        (certificate) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ certificate })),
        (err: unknown) => response.writeHead(400).end(String(err)),
      );
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sign` })}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

export interface LinkerdBenchReport {
  readonly isolated: IsolatedResult;
  readonly oursOverHttp: HttpResult;
  readonly cfssl: HttpResult;
  /** ours over HTTP ÷ cfssl, both on one pinned core. */
  readonly ratio: number;
}

const best = (results: readonly HttpResult[]): HttpResult =>
  results.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));

/**
 * The whole comparison; the lead's bench/run.ts can call this and print or record the report. Ours and cfssl run in
 * alternating rounds and the best round of each is kept, so background load on a shared machine skews both alike.
 */
export async function runLinkerdBench(options: { seconds?: number; rounds?: number } = {}): Promise<LinkerdBenchReport> {
  const seconds = options.seconds ?? 3;
  const csr = generateKeyAndRequest({ dnsNames: [IDENTITY], uris: [SPIFFE_ID] }).csrPem;
  const isolatedRuns: IsolatedResult[] = [];
  for (let round = 0; round < 3; round++) isolatedRuns.push(await benchCaIsolated(1000));
  const ours: HttpResult[] = [];
  const theirs: HttpResult[] = [];
  for (let round = 0; round < (options.rounds ?? 2); round++) {
    ours.push(await benchCaOverHttp(csr, seconds));
    theirs.push(await benchCfssl(csr, seconds));
  }
  const isolated = isolatedRuns.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
  const oursOverHttp = best(ours);
  const cfssl = best(theirs);
  return { isolated, oursOverHttp, cfssl, ratio: oursOverHttp.perSecond / cfssl.perSecond };
}

export function formatLinkerdBench(report: LinkerdBenchReport): string {
  const http = (name: string, result: HttpResult) =>
    `${name.padEnd(34)} ${result.perSecond.toFixed(0).padStart(6)} certs/s   p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  errors ${result.errors}`;
  return [
    `our CA, issue() in-process, 1 thread ${report.isolated.perSecond.toFixed(0).padStart(6)} certs/s   (${report.isolated.microsecondsEach.toFixed(0)} µs each, ${report.isolated.certificates} certs)`,
    http('our CA over node:http, 1 core', report.oursOverHttp),
    http('cfssl serve /sign, 1 core', report.cfssl),
    `ratio ours/cfssl over HTTP: ${report.ratio.toFixed(2)}x  (best round of each; Debian cfssl 1.2.0 signs one DNS SAN: no URI SAN, no provenance)`,
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'serve-ca') await serveCa();
  else process.stdout.write(`${formatLinkerdBench(await runLinkerdBench())}\n`);
}
