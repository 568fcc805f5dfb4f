/**
 * `npm run bench:soak`: a bounded soak of full exchanges (token + linkerd grants, jobRunning answered by the stand-in)
 * at half the saturating rate, on 127.0.0.1.
 *
 *   1. the broker child pinned to core 0 (memory stores, or `--redis`: replay store and rate limit on a real
 *      redis-server), generator, stand-in and token minting on core 1;
 *   2. the saturating rate: closed loop, 16 connections, 1 s warm-up + 3 s measured;
 *   3. an open loop at half that rate, in windows of 10 s; after each window the child reports its RSS, heap used and
 *      event-loop delay (IPC 'stats', bench/broker-child.ts), and the window's latency percentiles are printed;
 *   4. least-squares slopes of RSS, heap used, event-loop delay p99 and latency p99 over the windows after the warm-up.
 *
 * ID tokens live 60 s (each window's tokens are minted during the previous window on a worker thread), so the memory
 * replay store, which keeps a token's jti until it expires, reaches its steady size within the warm-up.
 *
 * Options: --duration SECONDS (default 600), --warmup SECONDS (default a fifth of the duration, at most 120),
 * --window SECONDS (default 10), --redis, --json FILE.
 */
import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { startRedis, type RedisServer } from '../test/support/redis.js';
import type { ChildStats } from './broker-child.js';
import { prepareFullExchange } from './full-exchange.js';
import { codesText, fmt, measured, pin, startBroker } from './harness.js';
import { closedLoop, openLoop, percentile, TokenSupply } from './load.js';

const argv = process.argv.slice(2);
const option = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const durationSeconds = Number(option('--duration') ?? 600);
const windowSeconds = Number(option('--window') ?? 10);
const warmupSeconds = Number(option('--warmup') ?? Math.min(120, durationSeconds / 5));
const useRedis = argv.includes('--redis');
const jsonOut = option('--json');
const TOKEN_LIFETIME = 60;
const MiB = 1024 * 1024;

interface WindowSample {
  readonly t: number;
  readonly ok: number;
  readonly codes: Record<string, number>;
  readonly timedOut: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly stats: ChildStats;
}

/** Least-squares slope and intercept of y over x, and the slope's standard error. */
function fitLine(points: ReadonlyArray<readonly [number, number]>): { slope: number; intercept: number; slopeError: number } {
  const n = points.length;
  if (n < 3) return { slope: Number.NaN, intercept: Number.NaN, slopeError: Number.NaN };
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  }
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanX;
  const residuals = points.reduce((sum, [x, y]) => sum + (y - intercept - slope * x) ** 2, 0);
  return { slope, intercept, slopeError: Math.sqrt(residuals / (n - 2) / sxx) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  if (!(durationSeconds > 0 && windowSeconds > 0 && warmupSeconds >= 0 && warmupSeconds < durationSeconds)) throw new Error('--duration, --window and --warmup must be positive, warm-up shorter than the duration');
  if (availableParallelism() < 2) throw new Error('the soak needs 2 cores (broker on core 0, generator on core 1)');
  const full = await prepareFullExchange();
  let redis: RedisServer | undefined;
  try {
    redis = useRedis ? await startRedis() : undefined;
    const firstTokens = await full.mint(16_000, 1_000, { lifetimeSeconds: TOKEN_LIFETIME });
    pin(1);
    if (redis) pin(1, redis.pid);
    const broker = await startBroker(full.settings('audit.log', { redisUrl: redis?.url }), undefined);
    try {
      console.log(`bench:soak: full exchanges (token + linkerd, jobRunning), ${useRedis ? 'Redis' : 'memory'} stores, ${durationSeconds} s in ${windowSeconds} s windows, warm-up ${warmupSeconds} s`);
      const supply = new TokenSupply(firstTokens);
      await closedLoop(broker.url, supply, { connections: 16, warmupMs: 0, measureMs: 1000, mark: async () => undefined, body: full.body });
      const saturation = await measured(broker, (mark) => closedLoop(broker.url, supply, { connections: 16, warmupMs: 0, measureMs: 3000, mark, body: full.body }));
      if (saturation.result.codes.ok !== saturation.result.completed) throw new Error(`saturation: not every exchange succeeded: ${codesText(saturation.result.codes)}`);
      const saturating = saturation.result.completed / saturation.result.windowSeconds;
      const rate = Math.max(20, Math.floor(saturating / 2));
      console.log(`    saturating rate ${fmt(saturating)}/s (${fmt(saturation.result.completed / saturation.serverCpuSeconds)} per CPU-second); soak at ${fmt(rate)}/s`);
      await broker.stats(); // starts the first window's event-loop histogram afresh

      const perWindow = Math.ceil(rate * windowSeconds) + 50;
      let nextJob = 100_000;
      const mintNext = () => {
        const batch = full.mint(perWindow, nextJob, { threads: 1, lifetimeSeconds: TOKEN_LIFETIME });
        nextJob += perWindow;
        return batch;
      };
      let upcoming = mintNext();
      const samples: WindowSample[] = [];
      const started = performance.now();
      console.log('      t s      ok  p50 ms  p99 ms  max ms  RSS MiB  heap MiB  loop p99 ms  loop max ms');
      for (let t = windowSeconds; t <= durationSeconds + 1e-9; t += windowSeconds) {
        const tokens = await upcoming;
        upcoming = mintNext();
        const window = await openLoop(broker.url, new TokenSupply(tokens), { rate, warmupMs: 0, measureMs: windowSeconds * 1000, graceMs: 5000, connections: 64, mark: async () => undefined, body: full.body });
        const stats = await broker.stats();
        const lat = window.latencies;
        const sample: WindowSample = { t, ok: window.codes.ok ?? 0, codes: window.codes, timedOut: window.timedOut, p50: percentile(lat, 50), p99: percentile(lat, 99), max: percentile(lat, 100), stats };
        samples.push(sample);
        const odd = window.codes.ok === window.completed && window.timedOut === 0 ? '' : `  ${codesText(window.codes)} ${window.timedOut} unanswered`;
        console.log(
          `    ${String(t).padStart(5)} ${fmt(sample.ok).padStart(7)} ${fmt(sample.p50, 2).padStart(7)} ${fmt(sample.p99, 2).padStart(7)} ${fmt(sample.max, 1).padStart(7)}` +
            ` ${fmt(stats.rss / MiB, 1).padStart(8)} ${fmt(stats.heapUsed / MiB, 1).padStart(9)} ${fmt(stats.loopDelay.p99, 2).padStart(12)} ${fmt(stats.loopDelay.max, 1).padStart(12)}${odd}`,
        );
      }
      await upcoming;
      const elapsed = (performance.now() - started) / 1000;
      const after = samples.filter((sample) => sample.t > warmupSeconds);
      const slope = (pick: (sample: WindowSample) => number) => fitLine(after.map((sample) => [sample.t / 60, pick(sample)] as const));
      const mean = (pick: (sample: WindowSample) => number) => after.reduce((sum, sample) => sum + pick(sample), 0) / after.length;
      const spanMinutes = after.length > 1 ? ((after.at(-1)?.t ?? 0) - (after[0]?.t ?? 0)) / 60 : Number.NaN;
      const report = (name: string, unit: string, pick: (sample: WindowSample) => number, digits: number) => {
        const fit = slope(pick);
        const level = mean(pick);
        // ± one standard error of the slope: a slope within about two of them is no trend these windows can show.
        console.log(`    ${name.padEnd(22)} mean ${fmt(level, digits)} ${unit}, slope ${fmt(fit.slope, 3)} ± ${fmt(fit.slopeError, 3)} ${unit}/min (${fmt(((fit.slope * spanMinutes) / level) * 100, 1)} % of the mean over the ${fmt(spanMinutes, 1)} min fitted)`);
        return { mean: level, slopePerMinute: fit.slope, slopeError: fit.slopeError, changeOverFit: (fit.slope * spanMinutes) / level };
      };
      console.log(`bench:soak: ${samples.length} windows in ${fmt(elapsed, 0)} s; least-squares fits over the ${after.length} windows after ${warmupSeconds} s:`);
      const fits = {
        rssMiB: report('RSS', 'MiB', (sample) => sample.stats.rss / MiB, 1),
        heapUsedMiB: report('heap used', 'MiB', (sample) => sample.stats.heapUsed / MiB, 1),
        loopDelayP99Ms: report('event-loop delay p99', 'ms', (sample) => sample.stats.loopDelay.p99, 2),
        latencyP99Ms: report('exchange p99', 'ms', (sample) => sample.p99, 2),
      };
      const p99s = after.map((sample) => sample.p99);
      const p99Median = median(p99s);
      const p99Max = Math.max(...p99s);
      const failed = samples.reduce((sum, sample) => sum + sample.timedOut + Object.entries(sample.codes).reduce((n, [code, count]) => n + (code === 'ok' ? 0 : count), 0), 0);
      console.log(
        `    exchange p99 per window after warm-up: median ${fmt(p99Median, 2)} ms, min ${fmt(Math.min(...p99s), 2)}, max ${fmt(p99Max, 2)} (${fmt(p99Max / p99Median, 1)}× the median);` +
          ` windows above 2× the median: ${p99s.filter((p99) => p99 > 2 * p99Median).length} of ${p99s.length}; exchanges not ok: ${failed}`,
      );
      if (jsonOut) await writeFile(jsonOut, `${JSON.stringify({ durationSeconds, windowSeconds, warmupSeconds, store: useRedis ? 'redis' : 'memory', saturating, rate, fits, p99Median, p99Max, failed, samples }, null, 2)}\n`);
    } finally {
      await broker.stop();
    }
  } finally {
    await redis?.stop();
    await full.close();
  }
  process.exit(0);
}

// Every window is bounded in count and time; this is the last resort for the whole run.
setTimeout(() => {
  console.error('bench:soak: still running long after its duration, giving up');
  process.exit(1);
}, (durationSeconds + 180) * 1000).unref();

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
