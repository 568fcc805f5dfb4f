/**
 * `npm run bench:linkerd`: end-to-end linkerd exchanges (POST /v1/exchange with a CSR: token verification, policy with
 * jobRunning answered by the stand-in GitLab, replay check, certificate issuance, audit) beside cfssl's sign endpoint,
 * in one bounded run (~30 s on 2 cores) on 127.0.0.1.
 *
 *   1. a CA (anchor + name-constrained P-256 issuer from generateCaMaterial) written to a temp dir, handed to the broker
 *      as `config.linkerd` files; a policy rule granting `linkerd` with `jobRunning: true`; distinct ID tokens pre-minted;
 *   2. the broker in a child pinned to core 0 (bench/broker-child.ts), generator + stand-in pinned to core 1;
 *   3. ours: closed loop (16 connections) → exchanges per CPU-second of the broker; open loop at half that rate → p50/p99;
 *   4. cfssl (`cfssl serve`, Debian golang-cfssl) pinned to core 0 with GOMAXPROCS=1, the same generators against
 *      /api/v1/cfssl/sign with the same P-256 CSR → signatures per CPU-second of cfssl (from /proc/PID/stat), p50/p99;
 *   5. ratio ours ÷ cfssl per CPU-second: PASS/FAIL against the target (≥ 1.0) and the floor (≥ 0.7).
 *
 * Debian's cfssl 1.2.0 signs the DNS identity only: it drops the URI SAN (SPIFFE ID) and adds no provenance
 * extensions, and it does no token verification, policy, job lookup, replay check or audit. It does less work per
 * certificate than an exchange.
 *
 * Options: --json FILE (write the figures), --keep (keep the temp dir with the audit log), --no-cfssl (ours only), --no-job-check (the rule
 * without jobRunning, the floor without its job lookup).
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { codesText, fmt, gcText, measured, pin, procCpuSeconds, startBroker, type Measured, type MeasuredServer } from './harness.js';
import { IDENTITY, NAMING, SPIFFE_ID, startCfssl } from './linkerd.js';
import { closedLoop, openLoop, percentile, TokenSupply, type RequestShape } from './load.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';
import { paymentsProductionPolicy } from './policy.js';

const AUDIENCE = 'https://broker.bench.example';
const TOKENS = 24_000;
const CFSSL_REQUESTS = 60_000;
const TARGET_RATIO = 1.0;
const FLOOR_RATIO = 0.7;
const CONNECTIONS = 16;
const SATURATION = { warmupMs: 500, measureMs: 4000 };
const HALF_LOAD = { warmupMs: 1000, measureMs: 4000, graceMs: 5000, connections: 64 };

const POLICY = paymentsProductionPolicy('payments-mesh-production', ['linkerd: { serviceAccount: deploy, namespace: ci, lifetime: 10m }']);

const argv = process.argv.slice(2);
const args = new Set(argv);
const jsonOut = args.has('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
/** Stops cfssl if the watchdog at the bottom fires while it runs (the broker child exits when its IPC channel closes). */
let stopOnWatchdog: () => void = () => undefined;

/** Is cfssl on PATH? If not, one bounded attempt at `apt-get install golang-cfssl` (as root only). */
function ensureCfssl(): { ok: true; version: string } | { ok: false; why: string } {
  const version = () => spawnSync('cfssl', ['version'], { encoding: 'utf8', timeout: 10_000 });
  let probe = version();
  if (probe.status !== 0) {
    if (process.getuid?.() !== 0) return { ok: false, why: 'cfssl is not installed and this is not root (apt-get install golang-cfssl)' };
    console.log('    cfssl not found: apt-get install -y golang-cfssl (at most 120 s)');
    const apt = spawnSync('apt-get', ['install', '-y', '-q', 'golang-cfssl'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (apt.status !== 0) return { ok: false, why: `apt-get install golang-cfssl failed (${apt.error?.message ?? `exit ${apt.status}`}): ${(apt.stderr ?? '').trim().split('\n').pop() ?? ''}` };
    probe = version();
    if (probe.status !== 0) return { ok: false, why: 'cfssl still not runnable after apt-get install' };
  }
  return { ok: true, version: probe.stdout.split('\n').filter((line) => /Version|Runtime/.test(line)).map((line) => line.trim()).join(', ') };
}

/** Names and extension count of a PEM certificate, to show what each side actually issued. */
function describe(pem: string): { sans: string; extensions: number; bytes: number } {
  const certificate = new x509.X509Certificate(pem);
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  const sans = san ? san.names.items.map((name) => `${name.type}:${name.value}`).join(', ') : '(none)';
  return { sans, extensions: certificate.extensions.length, bytes: certificate.rawData.byteLength };
}

interface Side {
  readonly saturation: { exchangesPerSecond: number; perCpuSecond: number; serverCpuShare: number; generatorCpuShare: number; codes: Record<string, number> };
  readonly halfLoad: { rate: number; measureSeconds: number; p50: number; p99: number; p999: number; max: number; codes: Record<string, number>; timedOut: number };
}

/** Warm-up, saturation (closed loop) and half load (open loop) against one pinned server; prints and returns the figures. */
async function measureSide(
  label: string, base: URL, server: MeasuredServer, supply: TokenSupply, shape: RequestShape,
  hooks: { afterWarmup?: () => void; extra?: (sat: Measured) => string } = {},
): Promise<Side> {
  await closedLoop(base, supply, { connections: CONNECTIONS, warmupMs: 0, measureMs: 1000, mark: async () => undefined, ...shape });
  hooks.afterWarmup?.();
  const saturation = await measured(server, (mark) => closedLoop(base, supply, { connections: CONNECTIONS, ...SATURATION, mark, ...shape }));
  const sat = saturation.result;
  const satRate = sat.completed / sat.windowSeconds;
  const perCpuSecond = (sat.codes.ok ?? 0) / saturation.serverCpuSeconds;
  const serverCpuShare = saturation.serverCpuSeconds / sat.windowSeconds;
  const generatorCpuShare = saturation.generatorCpuSeconds / sat.windowSeconds;
  console.log(
    `    ${label} saturation (closed loop, ${CONNECTIONS} connections, pinned to core 0): ${fmt(satRate)}/s, ${fmt(perCpuSecond)} per CPU-second of the server` +
      ` (server CPU ${fmt(serverCpuShare * 100)}%, generator+stand-in ${fmt(generatorCpuShare * 100)}% of core 1)` +
      `\n      ${codesText(sat.codes)}${hooks.extra?.(saturation) ?? ''}`,
  );
  const rate = Math.max(50, Math.floor(satRate / 2));
  const measureMs = Math.max(1000, Math.min(HALF_LOAD.measureMs, Math.floor(((supply.left / rate) * 1000 - HALF_LOAD.warmupMs) * 0.9)));
  const half = await measured(server, (mark) => openLoop(base, supply, { rate, ...HALF_LOAD, measureMs, mark, ...shape }));
  const lat = half.result.latencies;
  const halfLoad = {
    rate, measureSeconds: measureMs / 1000, p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9), max: percentile(lat, 100),
    codes: half.result.codes, timedOut: half.result.timedOut,
  };
  console.log(
    `    ${label} open loop at ${fmt(rate)}/s (half of saturation) for ${fmt(measureMs / 1000, 1)} s: p50 ${fmt(halfLoad.p50, 2)} ms, p99 ${fmt(halfLoad.p99, 2)} ms,` +
      ` p99.9 ${fmt(halfLoad.p999, 2)} ms, max ${fmt(halfLoad.max, 2)} ms\n      ${codesText(half.result.codes)}${half.result.timedOut ? `, ${half.result.timedOut} unanswered` : ''}`,
  );
  return { saturation: { exchangesPerSecond: satRate, perCpuSecond, serverCpuShare, generatorCpuShare, codes: sat.codes }, halfLoad };
}

async function main(): Promise<void> {
  const started = performance.now();
  if (availableParallelism() < 2) throw new Error('the benchmark needs 2 cores (server on core 0, generator on core 1)');
  console.log(`bench:linkerd: ${cpus()[0]?.model ?? 'cpu'} ×${availableParallelism()}, Node ${process.version}`);
  const cfsslState = args.has('--no-cfssl') ? { ok: false as const, why: 'skipped (--no-cfssl)' } : ensureCfssl();
  console.log(cfsslState.ok ? `    cfssl: ${cfsslState.version}` : `    cfssl UNAVAILABLE: ${cfsslState.why}; our figures only, no ratio`);

  // The job's side: one P-256 key and CSR naming the identity the rule grants (each request has its own ID token).
  const csr = generateKeyAndRequest({ dnsNames: [IDENTITY], uris: [SPIFFE_ID] }).csrPem;
  const body = JSON.stringify({ grants: { linkerd: { csr } } });

  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-bench-linkerd-'));
  const auditFile = join(dir, 'audit.log');
  const material = await generateCaMaterial({ ...NAMING });
  const linkerd = { issuerCertFile: join(dir, 'issuer.crt'), issuerKeyFile: join(dir, 'issuer.key'), trustAnchorsFile: join(dir, 'ca.crt') };
  await writeFile(linkerd.issuerCertFile, material.issuerCertPem);
  await writeFile(linkerd.issuerKeyFile, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(linkerd.trustAnchorsFile, material.trustAnchorsPem);
  const settings = { audience: AUDIENCE, policyPath: join(dir, 'policy.yaml'), auditFile, apiTokenFile: join(dir, 'gitlab-token'), linkerd };
  // --no-job-check: the same rule without jobRunning (and the floor without its job lookup), to isolate that call.
  const jobCheck = !args.has('--no-job-check');
  await writeFile(settings.policyPath, jobCheck ? POLICY : POLICY.replace('jobRunning: true', 'jobRunning: false'));
  await writeFile(settings.apiTokenFile, 'bench-read-api-token\n', { mode: 0o600 });

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  const mintStart = performance.now();
  const tokens = await mintInParallel(
    { privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: standIn.issuer, audience: AUDIENCE, count: TOKENS, firstJobId: 1000, overrides: {} },
    2,
  );
  console.log(`    minted ${fmt(tokens.length)} distinct RS256 ID tokens in ${fmt((performance.now() - mintStart) / 1000, 1)} s`);

  pin(1); // generator and stand-in on core 1 from here on; each server under test on core 0
  const figures: Record<string, unknown> = { cores: availableParallelism(), node: process.version };
  const supply = new TokenSupply(tokens);
  let ours: Side | undefined;
  let floor: Side | undefined;
  const broker = await startBroker({ ...settings, issuer: standIn.issuer }, undefined);
  try {
    // Sanity: one exchange returns a certificate with both SANs, and costs one job lookup.
    const jobsBefore = standIn.hits.jobs;
    const response = await fetch(new URL('/v1/exchange', broker.url), { method: 'POST', body, headers: { authorization: `Bearer ${supply.take() ?? ''}`, 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) });
    const reply = (await response.json()) as { grants?: { linkerd?: { certificate?: string } } };
    const certificate = reply.grants?.linkerd?.certificate;
    if (response.status !== 200 || !certificate) throw new Error(`a valid linkerd exchange failed: ${response.status} ${JSON.stringify(reply).slice(0, 300)}`);
    const issued = describe(certificate);
    console.log(`    our leaf: ${issued.sans}; ${issued.extensions} extensions, ${issued.bytes} bytes DER; job lookups for one exchange: ${standIn.hits.jobs - jobsBefore}`);
    figures.ourLeaf = issued;

    console.log('(1) ours: POST /v1/exchange {"grants":{"linkerd":{"csr":…}}}, token verification + policy (jobRunning) + replay + issuance + audit');
    let jobsAt = 0;
    ours = await measureSide('ours ', broker.url, broker, supply, { body }, {
      afterWarmup: () => (jobsAt = standIn.hits.jobs),
      // job lookups over the saturation phase (its 0.5 s lead-in included) ÷ exchanges sent in it
      extra: (sat) => `; ${fmt((standIn.hits.jobs - jobsAt) / Math.max(1, sat.result.sent), 2)} job lookups per exchange; ${gcText(sat.gc, sat.result.completed)}`,
    });
    figures.ours = ours;
    const auditLines = (await readFile(auditFile, 'utf8')).split('\n').length - 1;
    console.log(`    audit: ${fmt(auditLines)} records (${fmt((await stat(auditFile)).size / 1024 / 1024, 1)} MiB)${args.has('--keep') ? ` in ${auditFile}` : ''}`);
    figures.auditRecords = auditLines;
  } finally {
    await broker.stop();
  }
  // The floor: a minimal exchange (bench/floor-child.ts) with the same I/O, issuing through our CA, nothing else. Its
  // own process has no replay store, so it reuses the tokens.
  const floorServer = await startBroker({ ...settings, issuer: standIn.issuer, auditFile: join(dir, 'floor-audit.log') }, undefined, { script: './floor-child.js', env: { FLOOR_JOB: jobCheck ? '1' : '0' } });
  try {
    console.log('(1b) the floor: the same I/O (verify, job lookup, two awaited audit lines) and our CA\'s issue(), and nothing else (bench/floor-child.ts)');
    floor = await measureSide('floor', floorServer.url, floorServer, new TokenSupply(tokens), { body });
    figures.floor = floor;
  } finally {
    await floorServer.stop();
    await standIn.close();
    if (!args.has('--keep')) await rm(dir, { recursive: true, force: true });
  }

  if (cfsslState.ok) {
    console.log('(2) cfssl serve, GOMAXPROCS=1, pinned to core 0: POST /api/v1/cfssl/sign {"certificate_request": same CSR, "hosts": [DNS identity]}');
    const cfssl = await startCfssl(csr, '0');
    stopOnWatchdog = () => cfssl.stop();
    try {
      const signBody = cfssl.signBody(csr);
      const sample = (await (await fetch(cfssl.url, { method: 'POST', body: signBody, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) })).json()) as { result?: { certificate?: string } };
      const theirLeaf = sample.result?.certificate ? describe(sample.result.certificate) : undefined;
      console.log(`    cfssl leaf: ${theirLeaf ? `${theirLeaf.sans}; ${theirLeaf.extensions} extensions, ${theirLeaf.bytes} bytes DER` : 'no certificate in the reply'}`);
      const requests = new TokenSupply(Array.from({ length: CFSSL_REQUESTS }, () => 'unused'));
      const server: MeasuredServer = { cpuSeconds: async () => procCpuSeconds(cfssl.pid) };
      const theirs = await measureSide('cfssl', new URL(cfssl.url), server, requests, { body: signBody, path: new URL(cfssl.url).pathname });
      figures.cfssl = { ...theirs, leaf: theirLeaf };
      if (ours) {
        const ratio = ours.saturation.perCpuSecond / theirs.saturation.perCpuSecond;
        const wallRatio = ours.saturation.exchangesPerSecond / theirs.saturation.exchangesPerSecond;
        console.log(
          `(3) per CPU-second, ours ÷ cfssl = ${fmt(ours.saturation.perCpuSecond)} ÷ ${fmt(theirs.saturation.perCpuSecond)} = ${fmt(ratio, 2)}` +
            ` → target ≥ ${fmt(TARGET_RATIO, 1)}: ${ratio >= TARGET_RATIO ? 'PASS' : 'FAIL'}; floor ≥ ${fmt(FLOOR_RATIO, 1)}: ${ratio >= FLOOR_RATIO ? 'PASS' : 'FAIL'}` +
            `\n    (per wall second on the pinned core: ${fmt(wallRatio, 2)}; p99 at half load: ours ${fmt(ours.halfLoad.p99, 2)} ms, cfssl ${fmt(theirs.halfLoad.p99, 2)} ms)` +
            '\n    Note: Debian\'s cfssl 1.2.0 drops the URI SAN (SPIFFE ID) and adds no provenance extensions, and does no token' +
            '\n    verification, policy, job lookup, replay check or audit: it does less work per certificate than an exchange.',
        );
        figures.ratio = { perCpuSecond: ratio, wall: wallRatio, targetPass: ratio >= TARGET_RATIO, floorPass: ratio >= FLOOR_RATIO };
        if (floor) {
          const floorRatio = floor.saturation.perCpuSecond / theirs.saturation.perCpuSecond;
          console.log(`    the floor ÷ cfssl = ${fmt(floor.saturation.perCpuSecond)} ÷ ${fmt(theirs.saturation.perCpuSecond)} = ${fmt(floorRatio, 2)} (what a broker doing nothing but this I/O and issuance would reach); ours ÷ the floor = ${fmt(ours.saturation.perCpuSecond / floor.saturation.perCpuSecond, 2)}`);
          figures.floorRatio = floorRatio;
        }
      }
    } finally {
      cfssl.stop();
    }
  } else {
    console.log(`(2) cfssl: NOT MEASURED (${cfsslState.why}); no ratio this run`);
  }
  if (jsonOut) await writeFile(jsonOut, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`bench:linkerd: done in ${fmt((performance.now() - started) / 1000, 1)} s`);
}

// Every phase is bounded in count and time; this is the last resort for the whole run.
setTimeout(() => {
  console.error('bench:linkerd: still running after 180 s, giving up');
  stopOnWatchdog();
  process.exit(1);
}, 180_000).unref();

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
