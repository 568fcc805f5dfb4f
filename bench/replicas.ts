/**
 * `npm run bench:replicas`: full exchanges (token + linkerd grants, jobRunning answered by the stand-in) against one
 * and two broker replicas sharing a real redis-server (replay store and per-project rate limit on Redis), and the same
 * single replica with the memory stores, in alternating rounds on 127.0.0.1 (~1 min on 2 cores).
 *
 *   - replica A (Redis) pinned to core 0, replica B (Redis) pinned to core 1, replica M (memory stores) pinned to core 0;
 *   - "one": A alone, 16 connections; the generator, stand-in and redis-server pinned to core 1;
 *   - "two": A and B, 16 connections each (the generator spread over both), generator, stand-in and redis-server
 *     free to run on either core (there is no third core to give them);
 *   - "memory": M alone, as "one".
 * Each phase: closed loop, 0.5 s lead-in, 3 s measured; the CPU time of every replica and of redis-server comes from
 * /proc/PID/stat (utime + stime) at the window's edges. Figures: exchanges per second, exchanges per broker
 * CPU-second, broker (and redis-server) CPU per exchange; ratios are medians of the per-round ratios. Last, the stores
 * alone (bench/store-cost.ts): what one exchange's replay reservation and rate-limit take cost on the client side,
 * Redis vs memory, in this process, set against the broker's CPU per exchange with the memory stores.
 *
 * Options: --rounds N (default 3), --json FILE.
 */
import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { availableParallelism, cpus } from 'node:os';
import { startRedis } from '../test/support/redis.js';
import { prepareFullExchange } from './full-exchange.js';
import { codesText, fmt, pin, procCpuSeconds, startBroker, type BrokerProcess } from './harness.js';
import { closedLoop, exchangeOnce, type PhaseResult, TokenSupply } from './load.js';
import { measureStoreCost } from './store-cost.js';

const argv = process.argv.slice(2);
const option = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const ROUNDS = Number(option('--rounds') ?? 3);
const jsonOut = option('--json');
const CONNECTIONS = 16;
const PHASE = { warmupMs: 500, measureMs: 3000 };
/** High enough never to refuse, so every exchange still runs the limiter's Redis script. */
const RATE_LIMIT = 1_000_000_000;

type PhaseName = 'one' | 'two' | 'memory';

interface PhaseFigures {
  readonly exchangesPerSecond: number;
  readonly perBrokerCpuSecond: number;
  readonly brokerCpuMsPerExchange: number;
  readonly redisCpuMsPerExchange: number;
  /** This process: the load generator and the stand-in GitLab. */
  readonly generatorCpuMsPerExchange: number;
  readonly brokerCpuShare: number[];
  readonly codes: Record<string, number>;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** One closed loop per replica, at once, each window's edges read from that replica's /proc stat (and redis-server's). */
async function runPhase(replicas: readonly BrokerProcess[], redisPid: number, supply: TokenSupply, body: string): Promise<PhaseFigures> {
  let redisStart = 0;
  let redisEnd = 0;
  let ownStart = process.cpuUsage();
  let ownEnd = ownStart;
  const runs = await Promise.all(
    replicas.map(async (replica, index) => {
      let cpuStart = 0;
      let cpuEnd = 0;
      const result: PhaseResult = await closedLoop(replica.url, supply, {
        connections: CONNECTIONS, ...PHASE, body,
        mark: async (at) => {
          const pid = replica.child.pid ?? 0;
          if (at === 'start') cpuStart = procCpuSeconds(pid);
          else cpuEnd = procCpuSeconds(pid);
          if (index === 0 && at === 'start') {
            redisStart = procCpuSeconds(redisPid);
            ownStart = process.cpuUsage();
          }
          if (index === 0 && at === 'end') {
            redisEnd = procCpuSeconds(redisPid);
            ownEnd = process.cpuUsage();
          }
        },
      });
      return { result, cpu: cpuEnd - cpuStart };
    }),
  );
  const codes: Record<string, number> = {};
  for (const { result } of runs) for (const [code, count] of Object.entries(result.codes)) codes[code] = (codes[code] ?? 0) + count;
  const ok = runs.reduce((sum, { result }) => sum + (result.codes.ok ?? 0), 0);
  const cpu = runs.reduce((sum, run) => sum + run.cpu, 0);
  return {
    exchangesPerSecond: runs.reduce((sum, { result }) => sum + (result.codes.ok ?? 0) / result.windowSeconds, 0),
    perBrokerCpuSecond: ok / cpu,
    brokerCpuMsPerExchange: (cpu / ok) * 1000,
    // redis-server's CPU over the first loop's window; the loops start together and run for the same time.
    redisCpuMsPerExchange: ((redisEnd - redisStart) / ok) * 1000,
    generatorCpuMsPerExchange: ((ownEnd.user - ownStart.user + ownEnd.system - ownStart.system) / 1e3 / ok),
    brokerCpuShare: runs.map(({ result, cpu: used }) => used / result.windowSeconds),
    codes,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const cores = availableParallelism(); // before pinning, which narrows what it reports
  if (cores < 2) throw new Error('the benchmark needs 2 cores (one per replica)');
  console.log(`bench:replicas: ${cpus()[0]?.model ?? 'cpu'} ×${cores}, Node ${process.version}; full exchanges (token + linkerd, jobRunning)`);
  const full = await prepareFullExchange();
  const redis = await startRedis();
  const replicas: BrokerProcess[] = [];
  try {
    const tokens = await full.mint(12_000 + ROUNDS * 16_000, 1_000);
    const supply = new TokenSupply(tokens);
    const withRedis = { redisUrl: redis.url, requestsPerMinutePerProject: RATE_LIMIT };
    const a = await startBroker(full.settings('audit-a.log', withRedis), undefined, undefined, 0);
    replicas.push(a);
    const b = await startBroker(full.settings('audit-b.log', withRedis), undefined, undefined, 1);
    replicas.push(b);
    const m = await startBroker(full.settings('audit-m.log', { requestsPerMinutePerProject: RATE_LIMIT }), undefined, undefined, 0);
    replicas.push(m);

    // Sanity: the replicas share the replay store (one token, A then B: the second is refused), every replica serves.
    const agent = new Agent({ keepAlive: true });
    const shared = supply.take() ?? '';
    const first = await exchangeOnce(agent, a.url, shared, full.body);
    const again = await exchangeOnce(agent, b.url, shared, full.body);
    const onM = await exchangeOnce(agent, m.url, supply.take() ?? '', full.body);
    agent.destroy();
    if (first.code !== 'ok' || again.code === 'ok' || onM.code !== 'ok') throw new Error(`sanity: A ${first.code}, the same token on B ${again.code}, M ${onM.code}`);
    console.log(`    one token on A then B: ${first.code}, then ${again.status} ${again.code} (the replay store is shared); M: ${onM.code}`);

    for (const replica of [a, b, m]) await closedLoop(replica.url, supply, { connections: CONNECTIONS, warmupMs: 0, measureMs: 1000, mark: async () => undefined, body: full.body });

    const phases: Record<PhaseName, { replicas: BrokerProcess[]; generator: string }> = {
      one: { replicas: [a], generator: '1' },
      two: { replicas: [a, b], generator: '0,1' },
      memory: { replicas: [m], generator: '1' },
    };
    const order: PhaseName[] = ['one', 'two', 'memory'];
    const results: Array<Record<PhaseName, PhaseFigures>> = [];
    console.log('    round phase   exchanges/s  per broker CPU-s  broker ms/exchange  redis ms/exchange  generator ms/exchange  broker CPU share');
    for (let round = 0; round < ROUNDS; round++) {
      const figures = {} as Record<PhaseName, PhaseFigures>;
      for (const name of round % 2 === 0 ? order : [...order].reverse()) {
        const phase = phases[name];
        pin(phase.generator);
        pin(phase.generator, redis.pid);
        const result = await runPhase(phase.replicas, redis.pid, supply, full.body);
        if (result.codes.ok !== Object.values(result.codes).reduce((sum, count) => sum + count, 0)) throw new Error(`${name}: not every exchange succeeded: ${codesText(result.codes)}`);
        figures[name] = result;
        console.log(
          `    ${String(round + 1).padStart(5)} ${name.padEnd(7)} ${fmt(result.exchangesPerSecond).padStart(11)} ${fmt(result.perBrokerCpuSecond).padStart(17)}` +
            ` ${fmt(result.brokerCpuMsPerExchange, 3).padStart(19)} ${fmt(result.redisCpuMsPerExchange, 3).padStart(18)} ${fmt(result.generatorCpuMsPerExchange, 3).padStart(22)}   ${result.brokerCpuShare.map((share) => `${fmt(share * 100)}%`).join(' + ')}`,
        );
      }
      results.push(figures);
    }
    const ratio = (pick: (round: Record<PhaseName, PhaseFigures>) => number) => median(results.map(pick));
    const scaling = ratio((r) => r.two.exchangesPerSecond / r.one.exchangesPerSecond);
    const cpuScaling = ratio((r) => r.two.perBrokerCpuSecond / r.one.perBrokerCpuSecond);
    const redisCost = ratio((r) => r.one.brokerCpuMsPerExchange / r.memory.brokerCpuMsPerExchange);
    const withRedisServer = ratio((r) => (r.one.brokerCpuMsPerExchange + r.one.redisCpuMsPerExchange) / r.memory.brokerCpuMsPerExchange);
    console.log(`bench:replicas: medians of ${ROUNDS} rounds' ratios`);
    console.log(`    two ÷ one replica, exchanges per second:        ${fmt(scaling, 2)} (target ≥ 1.7 needs a core per replica plus one for the generator; this machine has ${cores})`);
    console.log(`    two ÷ one replica, per broker CPU-second:       ${fmt(cpuScaling, 2)} (1.00 = a second replica costs nothing extra per exchange)`);
    console.log(`    Redis ÷ memory stores, broker CPU per exchange: ${fmt(redisCost, 3)} (target ≤ 1.10); with redis-server's own CPU added: ${fmt(withRedisServer, 3)}`);
    const stores = await measureStoreCost(redis.url, RATE_LIMIT);
    const memoryExchangeMicros = median(results.map((r) => r.memory.brokerCpuMsPerExchange)) * 1000;
    const storesShare = (stores.redisMicros - stores.memoryMicros) / memoryExchangeMicros;
    console.log(
      `    the stores alone, client CPU per exchange (reserve + take, 16 in flight, this process): memory ${fmt(stores.memoryMicros, 1)} µs, Redis ${fmt(stores.redisMicros, 1)} µs;` +
        `\n      the difference is ${fmt(storesShare * 100, 1)} % of the broker's ${fmt(memoryExchangeMicros)} µs per exchange with the memory stores (median of the rounds) → Redis ÷ memory ≈ ${fmt(1 + storesShare, 3)}`,
    );
    if (jsonOut) await writeFile(jsonOut, `${JSON.stringify({ rounds: results, scaling, cpuScaling, redisCost, withRedisServer, stores, storesShare }, null, 2)}\n`);
  } finally {
    for (const replica of replicas) await replica.stop();
    await redis.stop();
    await full.close();
  }
  console.log(`bench:replicas: done in ${fmt((performance.now() - started) / 1000, 1)} s`);
  process.exit(0);
}

// Every phase is bounded in count and time; this is the last resort for the whole run.
setTimeout(() => {
  console.error('bench:replicas: still running after 300 s, giving up');
  process.exit(1);
}, 300_000).unref();

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
