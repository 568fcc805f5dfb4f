/**
 * Same-run A/B of two builds: `node dist/bench/ab.js OTHER_DIST_BENCH_DIR [rounds=24] [sliceMs=1000]`, where
 * OTHER_DIST_BENCH_DIR is the `dist/bench` directory of another built checkout (e.g. main). Both brokers run at once,
 * pinned to core 0, against one stand-in; the generator on core 1 drives them in alternating closed-loop slices
 * (order swapped each round) and compares exchanges per CPU-second of each broker, round by round. On a machine with
 * other load, full `npm run bench` runs minutes apart differ by far more than a few per cent; slices a second apart
 * see nearly the same machine, so the per-round ratios and their median are what to compare.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fmt, measured, pin, startBroker, type BrokerProcess } from './harness.js';
import { closedLoop, TokenSupply } from './load.js';
import { POLICY } from './policy.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const [otherDir, roundsArg, sliceArg] = process.argv.slice(2);
if (!otherDir) throw new Error('usage: node dist/bench/ab.js OTHER_DIST_BENCH_DIR [rounds] [sliceMs]');
const OTHER_CHILD = join(resolve(otherDir), 'broker-child.js');
const ROUNDS = Number(roundsArg ?? 24);
const SLICE_MS = Number(sliceArg ?? 1000);
const WARMUP_MS = 300;
/** Tokens per millisecond of load minted up front; each round is topped up from the fastest slice seen so far. */
const TOKENS_PER_MS = 1.9;
/** Head room over the fastest rate seen when topping up (a quieter stretch can run faster than any slice so far). */
const TOP_UP_MARGIN = 1.5;

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-ab-'));
  await writeFile(join(dir, 'policy.yaml'), POLICY);
  await writeFile(join(dir, 'gitlab-token'), 'bench-read-api-token\n', { mode: 0o600 });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: 'ab-key', alg: 'RS256', use: 'sig' });
  const count = Math.ceil((ROUNDS * 2 * (SLICE_MS + WARMUP_MS) + 2000) * TOKENS_PER_MS);
  const privateKeyPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const mintJob = { privateKeyPem, kid: 'ab-key', issuer: standIn.issuer, audience: AUDIENCE, overrides: {} };
  let nextJobId = 1000;
  let spare = await mintInParallel({ ...mintJob, count, firstJobId: nextJobId }, 2);
  nextJobId += count;
  pin(1);
  let supply = new TokenSupply(spare);
  let fastestPerMs = 0;
  /** Between rounds (both brokers idle), mints on core 1 whatever the next round may need at the fastest rate seen. */
  const topUp = async () => {
    const needed = Math.ceil(fastestPerMs * TOP_UP_MARGIN * 2 * (SLICE_MS + WARMUP_MS));
    if (supply.left >= needed) return;
    const extra = needed - supply.left;
    spare = [...spare.slice(spare.length - supply.left), ...(await mintInParallel({ ...mintJob, count: extra, firstJobId: nextJobId }, 2))];
    nextJobId += extra;
    supply = new TokenSupply(spare);
  };
  const builds = { other: OTHER_CHILD, this: './broker-child.js' } as const;
  const brokers = new Map<keyof typeof builds, BrokerProcess>();
  const perCpu = { other: [] as number[], this: [] as number[] };
  try {
    for (const name of ['other', 'this'] as const) {
      const settings = { issuer: standIn.issuer, audience: AUDIENCE, policyPath: join(dir, 'policy.yaml'), auditFile: join(dir, `${name}.log`), apiTokenFile: join(dir, 'gitlab-token') };
      const broker = await startBroker(settings, undefined, { script: builds[name], env: {} });
      brokers.set(name, broker);
      await closedLoop(broker.url, supply, { connections: 16, warmupMs: 0, measureMs: 1000, mark: async () => undefined });
    }
    for (let round = 0; round < ROUNDS; round++) {
      await topUp();
      for (const name of round % 2 === 0 ? (['other', 'this'] as const) : (['this', 'other'] as const)) {
        const broker = brokers.get(name) as BrokerProcess;
        const slice = await measured(broker, (mark) => closedLoop(broker.url, supply, { connections: 16, warmupMs: WARMUP_MS, measureMs: SLICE_MS, mark }));
        const ok = slice.result.codes.ok ?? 0;
        if (supply.left === 0) throw new Error(`${name}: the token supply ran out during round ${round + 1}; its slice would be short`);
        fastestPerMs = Math.max(fastestPerMs, slice.result.sent / (WARMUP_MS + SLICE_MS));
        if (ok !== slice.result.completed) throw new Error(`${name}: ${slice.result.completed - ok} exchanges did not succeed`);
        perCpu[name].push(ok / slice.serverCpuSeconds);
      }
      console.log(`round ${round + 1}: other ${fmt(perCpu.other.at(-1) ?? 0)}, this ${fmt(perCpu.this.at(-1) ?? 0)} exchanges per CPU-second`);
    }
  } finally {
    for (const broker of brokers.values()) await broker.stop();
    await standIn.close();
    await rm(dir, { recursive: true, force: true });
  }
  const ratios = perCpu.this.map((value, index) => value / (perCpu.other[index] ?? Number.NaN));
  console.log(`median exchanges per CPU-second: other ${fmt(median(perCpu.other))}, this ${fmt(median(perCpu.this))}`);
  console.log(`this ÷ other, per round: ${ratios.map((ratio) => fmt(ratio, 2)).join(' ')}; median ${fmt(median(ratios), 3)}`);
}

await main();
