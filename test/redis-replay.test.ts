/**
 * The Redis replay store and rate limiter against a real redis-server: single use across clients, release of only our
 * own reservation, PXAT expiry, 1,000 concurrent reserves, and a Redis killed mid-run and restarted on the same port.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { BrokerError } from '../src/core/errors.js';
import { createRedisConnection, type RedisConnection } from '../src/adapters/store/redis-connection.js';
import { createRedisRateLimiter } from '../src/adapters/store/redis-rate-limit.js';
import { createRedisReplayStore } from '../src/adapters/store/redis-replay.js';
import { startRedis, type RedisServer } from './support/redis.js';

const inAnHour = () => new Date(Date.now() + 3_600_000);

/** Resolves once `check` is true; fails after `ms` instead of waiting for ever. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

function assertNotReady(err: unknown): true {
  assert.ok(err instanceof BrokerError, `expected a BrokerError, got ${String(err)}`);
  assert.equal(err.code, 'not_ready');
  return true;
}

describe('Redis replay store', () => {
  let redis: RedisServer;
  const connections: RedisConnection[] = [];
  let raw: ReturnType<typeof createClient>;
  let n = 0;
  const uniqueKey = () => `https://gitlab.example\njti-${process.pid}-${++n}`;
  const redisKey = (key: string) => `oidc-broker:jti:${createHash('sha256').update(key).digest('hex')}`;
  async function connect(): Promise<RedisConnection> {
    const connection = createRedisConnection({ url: redis.url });
    connections.push(connection);
    await eventually(() => connection.ready(), 10_000, 'the client connects');
    return connection;
  }

  before(async () => {
    redis = await startRedis();
    raw = createClient({ url: redis.url });
    await raw.connect();
  });
  after(async () => {
    raw.destroy();
    for (const connection of connections) await connection.close();
    await redis.stop();
  });

  it('reserves a key once and refuses it after that, from any client', async () => {
    const [a, b] = [createRedisReplayStore(await connect()), createRedisReplayStore(await connect())];
    const key = uniqueKey();
    assert.equal(await a.reserve(key, inAnHour()), true);
    assert.equal(await a.reserve(key, inAnHour()), false);
    assert.equal(await b.reserve(key, inAnHour()), false);
    assert.equal(await a.ready(), true);
  });

  it('keeps no token material in Redis: the key is a SHA-256 of the issuer and jti', async () => {
    const store = createRedisReplayStore(await connect());
    const key = uniqueKey();
    await store.reserve(key, inAnHour());
    assert.equal(await raw.exists(redisKey(key)), 1);
    assert.deepEqual(await raw.keys(`*${key.split('\n')[1]}*`), []);
  });

  it('release frees its own reservation, so the job can retry', async () => {
    const [a, b] = [createRedisReplayStore(await connect()), createRedisReplayStore(await connect())];
    const key = uniqueKey();
    assert.equal(await a.reserve(key, inAnHour()), true);
    await a.release(key);
    assert.equal(await b.reserve(key, inAnHour()), true);
  });

  it('a stale release after expiry does not delete the reservation another request made since', async () => {
    const [a, b] = [createRedisReplayStore(await connect()), createRedisReplayStore(await connect())];
    const key = uniqueKey();
    assert.equal(await a.reserve(key, new Date(Date.now() + 100)), true);
    await sleep(250);
    assert.equal(await b.reserve(key, inAnHour()), true);
    await a.release(key);
    assert.equal(await b.reserve(key, inAnHour()), false);
  });

  it('release compares the value in Redis: a key taken over by another holder is left alone', async () => {
    // Here our own record of the reservation is still current, so only the compare-and-delete script protects b.
    const [a, b] = [createRedisReplayStore(await connect()), createRedisReplayStore(await connect())];
    const key = uniqueKey();
    assert.equal(await a.reserve(key, inAnHour()), true);
    await raw.del(redisKey(key));
    assert.equal(await b.reserve(key, inAnHour()), true);
    const holder = await raw.get(redisKey(key));
    await a.release(key);
    assert.equal(await raw.get(redisKey(key)), holder);
  });

  it('forgets what it needs for release after the release window: a later release leaves the jti spent', async () => {
    let clock = Date.now();
    const store = createRedisReplayStore(await connect(), { releaseWindowMs: 60_000, now: () => clock });
    const [early, late] = [uniqueKey(), uniqueKey()];
    assert.equal(await store.reserve(early, inAnHour()), true);
    assert.equal(await store.reserve(late, inAnHour()), true);
    await store.release(early);
    assert.equal(await raw.exists(redisKey(early)), 0);
    clock += 60_000;
    await store.release(late);
    assert.equal(await raw.exists(redisKey(late)), 1);
  });

  it('sets the expiry to the exact millisecond asked for (PXAT) and frees the key after it', async () => {
    const store = createRedisReplayStore(await connect());
    const key = uniqueKey();
    const until = new Date(Date.now() + 200);
    assert.equal(await store.reserve(key, until), true);
    assert.equal(await raw.pExpireTime(redisKey(key)), until.getTime());
    await sleep(Math.max(0, until.getTime() - Date.now()) + 50);
    assert.equal(await store.reserve(key, inAnHour()), true);
  });

  it('1,000 parallel reserves of 100 keys from two clients succeed exactly once per key', async () => {
    const stores = [createRedisReplayStore(await connect()), createRedisReplayStore(await connect())];
    const keys = Array.from({ length: 100 }, uniqueKey);
    const attempts = Array.from({ length: 1_000 }, (_, i) => ({ key: keys[i % 100] as string, store: stores[i % 2]! }));
    const results = await Promise.all(attempts.map(async ({ key, store }) => ({ key, won: await store.reserve(key, inAnHour()) })));
    const wins = new Map<string, number>();
    for (const { key, won } of results) if (won) wins.set(key, (wins.get(key) ?? 0) + 1);
    assert.equal(wins.size, 100);
    assert.ok([...wins.values()].every((count) => count === 1), 'a key was reserved twice');
  });
});

describe('Redis rate limiter', () => {
  let redis: RedisServer;
  const connections: RedisConnection[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const connection of connections) await connection.close();
    await redis.stop();
  });
  async function limiter(perMinute: number) {
    const connection = createRedisConnection({ url: redis.url });
    connections.push(connection);
    await eventually(() => connection.ready(), 10_000, 'the client connects');
    return createRedisRateLimiter(connection, perMinute);
  }

  it('shares one budget between replicas and answers the wait for Retry-After', async () => {
    const [a, b] = [await limiter(3), await limiter(3)];
    const now = new Date('2030-01-01T00:00:00Z');
    const key = `https://gitlab.example\n${process.pid}-shared`;
    assert.deepEqual(await a.peek(key, now), { ok: true, retryAfterSeconds: 0 });
    assert.equal((await a.take(key, now)).ok, true);
    assert.equal((await b.take(key, now)).ok, true);
    assert.equal((await a.take(key, now)).ok, true);
    assert.deepEqual(await b.take(key, now), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(await a.peek(key, now), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(await b.take(key, new Date(now.getTime() + 15_000)), { ok: false, retryAfterSeconds: 5 });
    assert.equal((await a.take(key, new Date(now.getTime() + 20_000))).ok, true);
    assert.equal((await b.take(key, new Date(now.getTime() + 20_000))).ok, false);
  });

  it('keeps separate budgets per key, and 0 per minute means no limit', async () => {
    const limited = await limiter(1);
    const now = new Date('2030-01-01T00:00:00Z');
    assert.equal((await limited.take(`${process.pid}-one`, now)).ok, true);
    assert.equal((await limited.take(`${process.pid}-two`, now)).ok, true);
    assert.equal((await limited.take(`${process.pid}-one`, now)).ok, false);
    const unlimited = await limiter(0);
    for (let i = 0; i < 5; i++) assert.equal((await unlimited.take(`${process.pid}-one`, now)).ok, true);
  });
});

describe('Redis killed mid-run and restarted', () => {
  it('fails closed with not_ready at once, reports not ready, and recovers on the same store', async () => {
    let redis = await startRedis();
    const connection = createRedisConnection({ url: redis.url });
    try {
      const store = createRedisReplayStore(connection);
      const limiter = createRedisRateLimiter(connection, 60);
      await eventually(() => store.ready(), 10_000, 'the client connects');
      assert.equal(await store.reserve(`before-${process.pid}`, inAnHour()), true);

      await redis.kill();
      const started = Date.now();
      const outcomes = await Promise.allSettled([store.reserve(`during-${process.pid}`, inAnHour()), limiter.take('project', new Date())]);
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        assertNotReady(outcome.reason);
      }
      // The command timeout is 1 s; an offline queue would have held these until Redis came back.
      assert.ok(Date.now() - started < 2_500, `refusing took ${Date.now() - started} ms`);
      await eventually(async () => !(await store.ready()), 5_000, 'readiness turns false');
      await assert.rejects(store.release(`before-${process.pid}`), assertNotReady);

      redis = await startRedis({ port: redis.port });
      await eventually(() => store.ready(), 15_000, 'the store recovers');
      assert.equal(await store.reserve(`after-${process.pid}`, inAnHour()), true);
      assert.equal(await store.reserve(`after-${process.pid}`, inAnHour()), false);
      assert.equal((await limiter.take('project', new Date())).ok, true);
    } finally {
      await connection.close();
      await redis.stop();
    }
  });
});
