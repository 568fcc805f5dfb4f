/**
 * What the replay store and the rate limiter cost the broker per exchange, Redis vs memory, measured in this process
 * (bench/replicas.ts): one exchange's worth of store calls (reserve the jti, take a unit of the project's budget),
 * 16 in flight, alternating batches of the same adapters the broker builds, CPU from process.cpuUsage(). Subtracting
 * the two isolates what Redis adds on the broker's side (node-redis encoding, socket writes, reply parsing) from the
 * noise of whole exchanges on a shared machine.
 */
import { createMemoryRateLimiter } from '../src/adapters/store/memory-rate-limit.js';
import { createMemoryReplayStore } from '../src/adapters/store/memory-replay.js';
import { createRedisConnection } from '../src/adapters/store/redis-connection.js';
import { createRedisRateLimiter } from '../src/adapters/store/redis-rate-limit.js';
import { createRedisReplayStore } from '../src/adapters/store/redis-replay.js';
import type { RateLimiter, ReplayStore } from '../src/ports.js';

const IN_FLIGHT = 16;

export interface StoreCost {
  /** Median CPU per exchange's worth of store calls, microseconds. */
  readonly memoryMicros: number;
  readonly redisMicros: number;
}

async function batch(replay: ReplayStore, limiter: RateLimiter, count: number, prefix: string): Promise<number> {
  const before = process.cpuUsage();
  let next = 0;
  const holdUntil = new Date(Date.now() + 120_000);
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) {
        const id = next++;
        if (!(await replay.reserve(`https://gitlab.bench.example\n${prefix}-${id}`, holdUntil))) throw new Error('a fresh jti was refused');
        const budget = await limiter.take('https://gitlab.bench.example\n20', new Date());
        if (!budget.ok) throw new Error('the rate limit refused');
      }
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** `rounds` alternating batches of `count` against memory stores and Redis stores on `redisUrl`; `perMinute` as configured. */
export async function measureStoreCost(redisUrl: string, perMinute: number, rounds = 6, count = 3000): Promise<StoreCost> {
  const connection = createRedisConnection({ url: redisUrl });
  try {
    for (let waited = 0; !(await connection.ready()); waited += 100) {
      if (waited > 10_000) throw new Error('Redis did not answer within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const memory = { replay: createMemoryReplayStore(), limiter: createMemoryRateLimiter(perMinute) };
    const redis = { replay: createRedisReplayStore(connection, { keyPrefix: 'store-cost:' }), limiter: createRedisRateLimiter(connection, perMinute, { keyPrefix: 'store-cost:' }) };
    await batch(memory.replay, memory.limiter, count, 'warm-m');
    await batch(redis.replay, redis.limiter, count, 'warm-r');
    const memoryMicros: number[] = [];
    const redisMicros: number[] = [];
    for (let round = 0; round < rounds; round++) {
      memoryMicros.push(await batch(memory.replay, memory.limiter, count, `m${round}`));
      redisMicros.push(await batch(redis.replay, redis.limiter, count, `r${round}`));
    }
    return { memoryMicros: median(memoryMicros), redisMicros: median(redisMicros) };
  } finally {
    await connection.close();
  }
}
