/**
 * `npm run bench`: a bounded (~1–2 min) benchmark of POST /v1/exchange (token grant) on 127.0.0.1.
 *
 *   1. crypto bound: jose RS256 verify + ES256 sign pairs per second, one process pinned to core 0;
 *   2. a stand-in GitLab (discovery, JWKS, jobs API) in this process; distinct ID tokens pre-minted on both cores;
 *   3. the broker in a child process pinned to core 0 (`taskset -c 0`), this process (generator + stand-in) on core 1;
 *   4. a denied request costs no GitLab API call (stand-in hit counts);
 *   5. saturation: closed loop, exchanges/s and exchanges per CPU-second of the broker process;
 *   6. latency: open loop at half the saturating rate, p50/p99 from each request's scheduled time;
 *   7. a control: a busy-loop server with the broker's CPU per exchange, same generator and rate (the machine's own tail);
 *   8. autocannon closed loop, for comparison.
 *
 * Options: --cpu-prof (write a V8 CPU profile of the broker to .bench-out/profiles), --json FILE (write the figures),
 * --keep (keep the temporary directory with the audit log), --no-job-check (policy without jobRunning, to isolate the
 * cost of the GitLab API call).
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import type { CryptoBound } from './crypto-bound.js';
import { controlLatency } from './control.js';
import { codesText, fmt, gcText, here, measured, pin, startBroker } from './harness.js';
import { closedLoop, EXCHANGE_BODY, exchangeOnce, openLoop, percentile, TokenSupply } from './load.js';
import { percentileUpperBoundMs, scrapeExchangeBuckets } from './server-latency.js';
import { POLICY } from './policy.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const TOKENS = 40_000;
const DENIED_TOKENS = 20;
const TARGET_RATIO = 0.4;
const TARGET_P99_MS = 10;

const args = new Set(process.argv.slice(2));
const jsonOut = process.argv[process.argv.indexOf('--json') + 1];

function cryptoBound(): CryptoBound {
  const result = spawnSync('taskset', ['-c', '0', process.execPath, here('./crypto-bound.js')], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`crypto bound failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as CryptoBound;
}

async function main(): Promise<void> {
  const started = performance.now();
  if (availableParallelism() < 2) throw new Error('the benchmark needs 2 cores (server on core 0, generator on core 1)');
  console.log(`bench: ${cpus()[0]?.model ?? 'cpu'} ×${availableParallelism()}, Node ${process.version}`);

  // (a) the crypto bound, alone on core 0.
  const bound = cryptoBound();
  console.log(`(a) crypto bound (one core): ${fmt(bound.pairsPerSecond)} verify+sign/s  [RS256 verify ${fmt(bound.verifyPerSecond)}/s, ES256 sign ${fmt(bound.signPerSecond)}/s]`);

  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-bench-'));
  const auditFile = join(dir, 'audit.log');
  const settingsBase = { audience: AUDIENCE, policyPath: join(dir, 'policy.yaml'), auditFile, apiTokenFile: join(dir, 'gitlab-token') };
  // --no-job-check: the same policy without jobRunning (isolates the GitLab API call's cost).
  await writeFile(settingsBase.policyPath, args.has('--no-job-check') ? POLICY.replace('jobRunning: true', 'jobRunning: false') : POLICY);
  await writeFile(settingsBase.apiTokenFile, 'bench-read-api-token\n', { mode: 0o600 });

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  const mintBase = { privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: standIn.issuer, audience: AUDIENCE };
  const mintStart = performance.now();
  const allowed = await mintInParallel({ ...mintBase, count: TOKENS, firstJobId: 1000, overrides: {} }, 2);
  const denied = await mintInParallel(
    { ...mintBase, count: DENIED_TOKENS, firstJobId: 900_000, overrides: { project_id: '99', job_project_id: '99', project_path: 'other/app', namespace_path: 'other' } },
    1,
  );
  console.log(`    minted ${fmt(allowed.length + denied.length)} distinct RS256 ID tokens in ${fmt((performance.now() - mintStart) / 1000, 1)} s`);

  pin(1); // generator and stand-in on core 1 from here on
  const broker = await startBroker({ ...settingsBase, issuer: standIn.issuer }, args.has('--cpu-prof') ? join(process.cwd(), '.bench-out', 'profiles') : undefined);
  const supply = new TokenSupply(allowed);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const figures: Record<string, unknown> = { cryptoBound: bound, cores: availableParallelism(), node: process.version };
  try {
    // Sanity: one allowed exchange costs one job lookup.
    const jobsBefore = standIn.hits.jobs;
    const first = await exchangeOnce(agent, broker.url, supply.take() as string);
    if (first.status !== 200) throw new Error(`a valid exchange failed: ${first.status} ${first.code}`);
    const jobsPerAllowed = standIn.hits.jobs - jobsBefore;

    // (e) denied requests (no matching rule) cost no GitLab API call.
    const hitsBefore = { ...standIn.hits };
    const deniedCodes: Record<string, number> = {};
    for (const token of denied) {
      const outcome = await exchangeOnce(agent, broker.url, token);
      deniedCodes[outcome.code] = (deniedCodes[outcome.code] ?? 0) + 1;
    }
    const deniedApiCalls = standIn.hits.jobs - hitsBefore.jobs + (standIn.hits.other - hitsBefore.other);
    const deniedOk = deniedCodes.policy_denied === DENIED_TOKENS && deniedApiCalls === 0;
    console.log(`(e) ${DENIED_TOKENS} denied requests: ${codesText(deniedCodes)}; GitLab API calls: ${deniedApiCalls} (an allowed one made ${jobsPerAllowed}) → ${deniedOk ? 'PASS' : 'FAIL'}`);
    figures.denied = { requests: DENIED_TOKENS, codes: deniedCodes, gitlabApiCalls: deniedApiCalls, jobsPerAllowed, pass: deniedOk };

    // Warm-up (JIT, connection pools), not measured.
    await closedLoop(broker.url, supply, { connections: 16, warmupMs: 0, measureMs: 1000, mark: async () => undefined });

    // (b) saturation, closed loop.
    const jobsAtSaturation = standIn.hits.jobs;
    const saturation = await measured(broker, (mark) => closedLoop(broker.url, supply, { connections: 16, warmupMs: 500, measureMs: 4000, mark }));
    const sat = saturation.result;
    const satRate = sat.completed / sat.windowSeconds;
    const perCpuSecond = sat.completed / saturation.serverCpuSeconds;
    const satOk = sat.codes.ok === sat.completed;
    console.log(
      `(b) saturation (closed loop, 16 connections, server pinned to core 0): ${fmt(satRate)} exchanges/s, ${fmt(perCpuSecond)} per CPU-second of the server` +
        ` (server CPU ${fmt((saturation.serverCpuSeconds / sat.windowSeconds) * 100)}%, generator+stand-in ${fmt((saturation.generatorCpuSeconds / sat.windowSeconds) * 100)}% of core 1)` +
        `\n    ${codesText(sat.codes)}; stand-in job lookups ${fmt(standIn.hits.jobs - jobsAtSaturation)}; ${gcText(saturation.gc, sat.completed)}`,
    );
    figures.saturation = { exchangesPerSecond: satRate, perCpuSecond, serverCpuSeconds: saturation.serverCpuSeconds, windowSeconds: sat.windowSeconds, codes: sat.codes, gc: saturation.gc, p50: percentile(sat.latencies, 50), p99: percentile(sat.latencies, 99) };

    // (c) latency at half the saturating rate, open loop.
    const rate = Math.max(50, Math.floor(satRate / 2));
    const measureMs = Math.min(4000, Math.floor(((supply.left / rate) * 1000 - 1000) * 0.6));
    const bucketsBefore = await scrapeExchangeBuckets(broker.url);
    const half = await measured(broker, (mark) => openLoop(broker.url, supply, { rate, warmupMs: 1000, measureMs, connections: 64, graceMs: 5000, mark }));
    const serverP99 = percentileUpperBoundMs(bucketsBefore, await scrapeExchangeBuckets(broker.url), 99);
    const p50 = percentile(half.result.latencies, 50);
    const p99 = percentile(half.result.latencies, 99);
    const p999 = percentile(half.result.latencies, 99.9);
    const max = percentile(half.result.latencies, 100);
    console.log(
      `(c) open loop at ${fmt(rate)} req/s (half of saturation) for ${fmt(measureMs / 1000, 1)} s: p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, p99.9 ${fmt(p999, 2)} ms, max ${fmt(max, 2)} ms` +
        `\n    ${codesText(half.result.codes)}${half.result.timedOut ? `, ${half.result.timedOut} unanswered` : ''}; server CPU ${fmt((half.serverCpuSeconds / (measureMs / 1000 + 1)) * 100)}%; ${gcText(half.gc, half.result.completed)}` +
        `\n    server-side p99 (the broker's own histogram, warm-up included): ≤ ${serverP99 === undefined ? '?' : fmt(serverP99, 1)} ms`,
    );
    figures.halfLoad = { rate, measureSeconds: measureMs / 1000, p50, p99, p999, max, serverP99UpperBoundMs: serverP99, codes: half.result.codes, timedOut: half.result.timedOut, gc: half.gc };

    // (f) the control: the same generator and rate against a server that only spends the broker's CPU per exchange.
    const control = await controlLatency({ rate, spinMicros: 1e6 / perCpuSecond, warmupMs: 1000, measureMs });
    console.log(
      `(f) control at the same rate, a busy loop of ${fmt(control.spinMicros)} µs per request (the broker's CPU per exchange) on core 0:` +
        ` p50 ${fmt(control.p50, 2)} ms, p99 ${fmt(control.p99, 2)} ms, p99.9 ${fmt(control.p999, 2)} ms, max ${fmt(control.max, 2)} ms` +
        `\n    (the tail this machine and the generator add by themselves; the broker's p99 cannot be expected below it)`,
    );
    figures.control = control;

    // (d) against the targets. The bound is measured again now and the higher of the two is used: on this shared VM
    // a slow stretch during (a) would otherwise flatter the ratio.
    const boundAfter = cryptoBound();
    const boundUsed = Math.max(bound.pairsPerCpuSecond, boundAfter.pairsPerCpuSecond);
    console.log(`    crypto bound again: ${fmt(boundAfter.pairsPerSecond)} verify+sign/s (before: ${fmt(bound.pairsPerSecond)}); the ratio uses the higher, ${fmt(boundUsed)}`);
    figures.cryptoBoundAfter = boundAfter;
    const ratio = perCpuSecond / boundUsed;
    const ratioOk = ratio >= TARGET_RATIO;
    const p99Ok = p99 <= TARGET_P99_MS;
    console.log(
      `(d) exchanges per CPU-second ÷ crypto bound = ${fmt(perCpuSecond)} ÷ ${fmt(boundUsed)} = ${fmt(ratio, 2)} (target ≥ ${TARGET_RATIO}) → ${ratioOk ? 'PASS' : 'FAIL'}` +
        `\n    p99 at half load ${fmt(p99, 2)} ms (target ≤ ${TARGET_P99_MS} ms) → ${p99Ok ? 'PASS' : 'FAIL'}`,
    );
    figures.targets = { ratio, ratioOk, p99Ok };

    // autocannon, closed loop, for comparison (its latencies include queueing behind 16 connections).
    const left = supply.left;
    if (left > 500) {
      const cannon = await autocannon({
        url: broker.url.origin,
        connections: 16,
        duration: 3,
        maxOverallRequests: left - 50,
        requests: [{
          method: 'POST', path: '/v1/exchange', body: EXCHANGE_BODY, headers: { 'content-type': 'application/json' },
          setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${supply.take() ?? 'exhausted'}` } }),
        }],
      });
      console.log(`    autocannon -c 16 (closed loop): ${fmt(cannon.requests.average)} req/s, p50 ${fmt(cannon.latency.p50, 1)} ms, p99 ${fmt(cannon.latency.p99, 1)} ms, 2xx ${cannon['2xx']}, non-2xx ${cannon.non2xx}`);
      figures.autocannon = { requestsPerSecond: cannon.requests.average, p50: cannon.latency.p50, p99: cannon.latency.p99, ok: cannon['2xx'], non2xx: cannon.non2xx };
    }
    if (!satOk) console.log('    WARNING: some saturation requests did not succeed; figures are not comparable');
    const auditBytes = (await stat(auditFile)).size;
    const auditLines = (await readFile(auditFile, 'utf8')).split('\n').length - 1;
    console.log(`    audit: ${fmt(auditLines)} records (${fmt(auditBytes / 1024 / 1024, 1)} MiB) in ${auditFile}${args.has('--keep') ? '' : ' (removed)'}`);
    figures.auditRecords = auditLines;
  } finally {
    agent.destroy();
    await broker.stop();
    await standIn.close();
    if (!args.has('--keep')) await rm(dir, { recursive: true, force: true });
  }
  if (jsonOut && args.has('--json')) await writeFile(jsonOut, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`bench: done in ${fmt((performance.now() - started) / 1000, 1)} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
