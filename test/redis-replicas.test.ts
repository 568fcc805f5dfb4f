/**
 * `waitReplicas`: a reservation counts only once a replica has acknowledged it (WAIT), which narrows the failover window
 * of asynchronous replication. Against a real primary and replica.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { BrokerError } from '../src/core/errors.js';
import { createRedisConnection, type RedisConnection } from '../src/adapters/store/redis-connection.js';
import { createRedisReplayStore } from '../src/adapters/store/redis-replay.js';
import { startRedis, type RedisServer } from './support/redis.js';

const inAnHour = () => new Date(Date.now() + 3_600_000);
const redisKey = (key: string) => `oidc-broker:jti:${createHash('sha256').update(key).digest('hex')}`;

async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

describe('Redis replay store waiting for replicas', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let connection: RedisConnection;
  let primaryClient: ReturnType<typeof createClient>;
  let replicaClient: ReturnType<typeof createClient>;

  before(async () => {
    // No delay before a diskless full sync, so the replica is in step within moments.
    primary = await startRedis({ extraArgs: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
    primaryClient = createClient({ url: primary.url });
    replicaClient = createClient({ url: replica.url });
    await Promise.all([primaryClient.connect(), replicaClient.connect()]);
    // In step means acknowledging writes: a replica can be listed online before it answers WAIT.
    await eventually(async () => {
      await primaryClient.set('sync-probe', '1');
      return (await primaryClient.wait(1, 200)) === 1;
    }, 15_000, 'the replica acknowledges writes');
    connection = createRedisConnection({ url: primary.url });
    await eventually(() => connection.ready(), 10_000, 'the client connects');
  });
  after(async () => {
    await connection.close();
    primaryClient.destroy();
    replicaClient.destroy();
    await replica.stop();
    await primary.stop();
  });

  it('counts a reservation once a replica holds it', async () => {
    const store = createRedisReplayStore(connection, { waitReplicas: 1 });
    const key = `replicated-${process.pid}`;
    assert.equal(await store.reserve(key, inAnHour()), true);
    assert.equal(await replicaClient.get(redisKey(key)), await primaryClient.get(redisKey(key)));
    assert.equal(await store.reserve(key, inAnHour()), false);
  });

  it('refuses with not_ready, and undoes the reservation, when no replica acknowledges it', async () => {
    replicaClient.destroy();
    await replica.stop();
    await eventually(async () => (await primaryClient.info('replication')).includes('connected_slaves:0'), 10_000, 'the primary sees the replica go');
    const key = `unreplicated-${process.pid}`;
    await assert.rejects(createRedisReplayStore(connection, { waitReplicas: 1 }).reserve(key, inAnHour()), (err: unknown) => {
      assert.ok(err instanceof BrokerError);
      assert.equal(err.code, 'not_ready');
      return true;
    });
    assert.equal(await primaryClient.exists(redisKey(key)), 0);
    assert.equal(await createRedisReplayStore(connection).reserve(key, inAnHour()), true);
  });
});
