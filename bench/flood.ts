/**
 * `npm run bench:flood`: a garbage flood beside valid exchanges, bounded in time (~50 s on 2 cores), on 127.0.0.1.
 *
 *   1. distinct ID tokens pre-minted for the valid stream, plus one spare that every garbage request carrying a
 *      well-formed token uses (test/support/garbage.ts: no token, malformed token, bad signature, oversized body,
 *      wrong content type, unknown grant);
 *   2. the broker in a child pinned to core 0 (bench/broker-child.ts: file audit, memory replay store, the two-rule
 *      policy with jobRunning, limits.failedAuthPerMinutePerAddress 0 because every request comes from 127.0.0.1),
 *      generator and stand-in GitLab pinned to core 1;
 *   3. after a warm-up, the garbage alone for 3 s → the broker's CPU per refusal; then the valid stream alone at 200/s
 *      for 5 s → p50/p99 (latency from each request's scheduled time) and the broker's CPU per exchange;
 *   4. flood: the invalid stream at 5,000/s (--invalid-rate N) beside the valid stream at 200/s, both open loops,
 *      for 20 s (--seconds N) → the achieved rates, every answer checked against its expected status and code, the
 *      valid stream's p50/p99, the stand-in's discovery/JWKS/jobs calls (jobs must equal the valid exchanges, the
 *      others 0), and the broker's CPU share;
 *   5. the spare token exchanged once at the end (the garbage never reserved it).
 *
 * Options: --json FILE (write the figures), --invalid-rate N, --valid-rate N, --seconds N, --kind NAME (one kind of
 * garbage only, e.g. "no token", to see what each costs).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { garbageKinds, postExchange, validRequest, type FloodRequest, type PostOutcome } from '../test/support/garbage.js';
import { fmt, pin, startBroker } from './harness.js';
import { percentile } from './load.js';
import { POLICY } from './policy.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const argv = process.argv.slice(2);
const option = (name: string, fallback: number) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const INVALID_RATE = option('--invalid-rate', 5000);
const VALID_RATE = option('--valid-rate', 200);
const FLOOD_SECONDS = option('--seconds', 20);
const BASELINE_SECONDS = 5;
const WARMUP_SECONDS = 1;
const COST_SECONDS = 3;
const GRACE_MS = 10_000;
/** Unanswered invalid requests at most; beyond it the generator skips (and counts) what falls due. */
const INVALID_OUTSTANDING = 256;
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;

interface Planned {
  readonly kind: string;
  readonly expected: { readonly status: number; readonly code: string };
  readonly request: FloodRequest;
}

interface StreamResult {
  readonly sent: number;
  /** Due but not sent because `maxOutstanding` requests were already waiting (the generator or the broker behind). */
  readonly skipped: number;
  readonly completed: number;
  readonly elapsedSeconds: number;
  /** "kind status code" → count, for answers other than expected. */
  readonly wrong: Record<string, number>;
  readonly byKind: Record<string, number>;
  /** Milliseconds from each request's scheduled time, sorted. */
  readonly latencies: Float64Array;
}

/**
 * Constant-rate open loop for `seconds`: request i is due at start + i/rate, a 1 ms ticker sends every due request,
 * and each latency counts from the scheduled time. A due request finding `maxOutstanding` unanswered is skipped (and
 * counted), so an overloaded run reports the rate it achieved instead of queueing without bound. Resolves once every
 * sent request answered (or the grace period ended).
 */
function openStream(base: URL, agent: Agent, rate: number, seconds: number, plan: (index: number) => Planned, maxOutstanding = Infinity): Promise<StreamResult> {
  const total = Math.floor(rate * seconds);
  const interval = 1000 / rate;
  const wrong: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  const latencies: number[] = [];
  const start = performance.now() + 5;
  let sent = 0;
  let due = 0;
  let skipped = 0;
  let settled = 0;
  let lastAnswer = start;
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(graceTimer);
      resolve({ sent, skipped, completed: settled, elapsedSeconds: (lastAnswer - start) / 1000, wrong, byKind, latencies: Float64Array.from(latencies).sort() });
    };
    const graceTimer = setTimeout(finish, seconds * 1000 + GRACE_MS);
    const settle = (planned: Planned, dueAt: number, outcome: PostOutcome) => {
      lastAnswer = performance.now();
      latencies.push(lastAnswer - dueAt);
      byKind[planned.kind] = (byKind[planned.kind] ?? 0) + 1;
      if (outcome.status !== planned.expected.status || outcome.code !== planned.expected.code) {
        const key = `${planned.kind}: ${outcome.status} ${outcome.code}`;
        wrong[key] = (wrong[key] ?? 0) + 1;
      }
      if (++settled === sent && due === total) finish();
    };
    const tick = () => {
      const now = performance.now();
      while (due < total && start + due * interval <= now) {
        const dueAt = start + due * interval;
        due++;
        if (sent - settled >= maxOutstanding) {
          skipped++;
          continue;
        }
        const planned = plan(sent++);
        void postExchange(agent, base, planned.request).then((outcome) => settle(planned, dueAt, outcome));
      }
      if (due < total) setTimeout(tick, Math.max(0, Math.min(1, start + due * interval - performance.now())));
      else if (settled === sent) finish();
    };
    setTimeout(tick, 5);
  });
}

const ms = (value: number) => `${fmt(value, 1)} ms`;
const latencyText = (latencies: Float64Array) => `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}, max ${ms(percentile(latencies, 100))}`;

async function main(): Promise<void> {
  if (availableParallelism() < 2) throw new Error('the benchmark needs 2 cores (broker on core 0, generator on core 1)');
  console.log(`bench:flood: ${cpus()[0]?.model ?? 'cpu'} ×${availableParallelism()}, Node ${process.version}`);
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-flood-'));
  const settings = { audience: AUDIENCE, policyPath: join(dir, 'policy.yaml'), auditFile: join(dir, 'audit.log'), apiTokenFile: join(dir, 'gitlab-token'), failedAuthPerMinutePerAddress: 0 };
  await writeFile(settings.policyPath, POLICY);
  await writeFile(settings.apiTokenFile, 'bench-read-api-token\n', { mode: 0o600 });

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  const validCount = Math.ceil(VALID_RATE * (WARMUP_SECONDS + BASELINE_SECONDS + FLOOD_SECONDS)) + 1;
  const tokens = await mintInParallel({ privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: standIn.issuer, audience: AUDIENCE, count: validCount, firstJobId: 1000, overrides: {} }, 2);
  const spare = tokens.pop() as string;
  let nextToken = 0;
  const valid = (): Planned => ({ kind: 'valid', expected: { status: 200, code: 'ok' }, request: validRequest(tokens[nextToken++] as string) });
  const onlyKind = argv.includes('--kind') ? argv[argv.indexOf('--kind') + 1] : undefined;
  const kinds = garbageKinds(spare).filter((kind) => onlyKind === undefined || kind.name === onlyKind);
  if (kinds.length === 0) throw new Error(`--kind: one of ${garbageKinds(spare).map((kind) => `"${kind.name}"`).join(', ')}`);
  const invalid = (index: number): Planned => {
    const kind = kinds[index % kinds.length]!;
    return { kind: kind.name, expected: kind, request: kind.request };
  };

  pin(1);
  const broker = await startBroker({ ...settings, issuer: standIn.issuer }, undefined);
  try {
    const base = broker.url;
    const validAgent = new Agent({ keepAlive: true, maxSockets: 32 });
    const invalidAgent = new Agent({ keepAlive: true, maxSockets: 64 });
    // Warm-up: some of each, so the JWKS is loaded and the code is compiled before anything is measured.
    for (let i = 0; i < 200; i++) await postExchange(invalidAgent, base, invalid(i).request);
    await openStream(base, validAgent, VALID_RATE, WARMUP_SECONDS, valid);

    // What a refusal costs the broker in CPU, whatever share of the core the machine gives it: garbage alone.
    const aloneCpuBefore = await broker.cpuSeconds();
    const alone = await openStream(base, invalidAgent, INVALID_RATE, COST_SECONDS, invalid, INVALID_OUTSTANDING);
    const cpuPerInvalid = ((await broker.cpuSeconds()) - aloneCpuBefore) / alone.completed;
    console.log(`    garbage alone for ${COST_SECONDS} s: ${fmt(alone.completed)} answered (${fmt(alone.completed / alone.elapsedSeconds)}/s), broker CPU ${fmt(cpuPerInvalid * 1e6)} µs per refusal, answers other than expected ${JSON.stringify(alone.wrong)}`);

    const baselineCpuBefore = await broker.cpuSeconds();
    const baseline = await openStream(base, validAgent, VALID_RATE, BASELINE_SECONDS, valid);
    const cpuPerValid = ((await broker.cpuSeconds()) - baselineCpuBefore) / baseline.completed;
    console.log(`    baseline, valid alone at ${fmt(VALID_RATE)}/s for ${BASELINE_SECONDS} s: ${fmt(baseline.completed)} answered, ${latencyText(baseline.latencies)}; broker CPU ${ms(cpuPerValid * 1000)} per exchange`);

    const hitsBefore = { ...standIn.hits };
    const cpuBefore = await broker.cpuSeconds();
    const ownBefore = process.cpuUsage();
    const [flood, served] = await Promise.all([
      openStream(base, invalidAgent, INVALID_RATE, FLOOD_SECONDS, invalid, INVALID_OUTSTANDING),
      openStream(base, validAgent, VALID_RATE, FLOOD_SECONDS, valid),
    ]);
    const own = process.cpuUsage(ownBefore);
    const brokerCpu = (await broker.cpuSeconds()) - cpuBefore;
    const elapsed = Math.max(flood.elapsedSeconds, served.elapsedSeconds);
    const hits = { discovery: standIn.hits.discovery - hitsBefore.discovery, jwks: standIn.hits.jwks - hitsBefore.jwks, jobs: standIn.hits.jobs - hitsBefore.jobs, other: standIn.hits.other - hitsBefore.other };
    const spareAnswer = await postExchange(validAgent, base, validRequest(spare));

    console.log(`    flood: invalid at ${fmt(INVALID_RATE)}/s asked, valid at ${fmt(VALID_RATE)}/s, ${FLOOD_SECONDS} s scheduled, ${fmt(elapsed, 1)} s until the last answer`);
    console.log(`      invalid: ${fmt(flood.completed)} of ${fmt(flood.sent)} sent answered (${fmt(flood.skipped)} skipped: ${INVALID_OUTSTANDING} already waiting), ${fmt(flood.completed / flood.elapsedSeconds)}/s achieved; by kind ${JSON.stringify(flood.byKind)}`);
    console.log(`      valid:   ${fmt(served.completed)} of ${fmt(served.sent)} answered, ${fmt(served.completed / served.elapsedSeconds)}/s achieved; ${latencyText(served.latencies)}`);
    console.log(`      answers other than expected: invalid ${JSON.stringify(flood.wrong)}, valid ${JSON.stringify(served.wrong)}`);
    console.log(`      stand-in GitLab calls during the flood: jobs ${hits.jobs} (valid exchanges ${served.completed}), discovery ${hits.discovery}, JWKS ${hits.jwks}, other ${hits.other}`);
    console.log(`      broker CPU ${fmt((brokerCpu / elapsed) * 100)}% of core 0, generator+stand-in ${fmt((((own.user + own.system) / 1e6) / elapsed) * 100)}% of core 1`);
    console.log(`      at the measured costs, ${fmt(INVALID_RATE)} invalid/s + ${fmt(VALID_RATE)} valid/s need ${fmt((INVALID_RATE * cpuPerInvalid + VALID_RATE * cpuPerValid) * 100)}% of one core of broker CPU`);
    console.log(`      spare token after the flood: ${spareAnswer.status} ${spareAnswer.code} (expected 200: garbage never reserves a jti)`);

    const noIo = hits.jobs === served.completed - Object.values(served.wrong).reduce((a, b) => a + b, 0) && hits.discovery === 0 && hits.jwks === 0 && hits.other === 0;
    const allRight = Object.keys(alone.wrong).length === 0 && Object.keys(flood.wrong).length === 0 && Object.keys(served.wrong).length === 0 && flood.completed === flood.sent && served.completed === served.sent && spareAnswer.status === 200;
    console.log(`    ${allRight && noIo ? 'PASS' : 'FAIL'}: every invalid request refused with its code before any network I/O, every valid one served`);
    const figures = {
      invalidRateAsked: INVALID_RATE, validRateAsked: VALID_RATE, seconds: FLOOD_SECONDS,
      baseline: { answered: baseline.completed, cpuPerExchangeMs: cpuPerValid * 1000, p50: percentile(baseline.latencies, 50), p99: percentile(baseline.latencies, 99) },
      invalid: { sent: flood.sent, skipped: flood.skipped, answered: flood.completed, ratePerSecond: flood.completed / flood.elapsedSeconds, byKind: flood.byKind, wrong: flood.wrong },
      valid: { sent: served.sent, answered: served.completed, ratePerSecond: served.completed / served.elapsedSeconds, p50: percentile(served.latencies, 50), p99: percentile(served.latencies, 99), max: percentile(served.latencies, 100), wrong: served.wrong },
      garbageAlone: { answered: alone.completed, ratePerSecond: alone.completed / alone.elapsedSeconds, cpuPerRefusalMicros: cpuPerInvalid * 1e6, wrong: alone.wrong },
      standInCalls: hits, brokerCpuShare: brokerCpu / elapsed, spare: spareAnswer, pass: allRight && noIo,
    };
    if (jsonOut) await writeFile(jsonOut, JSON.stringify(figures, null, 2));
    validAgent.destroy();
    invalidAgent.destroy();
    if (!(allRight && noIo)) process.exitCode = 1;
  } finally {
    await broker.stop();
    await standIn.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// Bounded even if something hangs: the whole run is well under this.
setTimeout(() => {
  console.error('bench:flood: watchdog fired after 180 s');
  process.exit(2);
}, 180_000).unref();

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
