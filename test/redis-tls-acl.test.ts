/**
 * The Redis connection over TLS (`rediss://`, a private CA made by openssl for this test) with an ACL user whose rights
 * are the least the broker needs (the ones docs/security.md recommends): it works with the right CA and password, and
 * fails closed (not_ready, never ready) with a wrong password, no credentials or an untrusted certificate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { BrokerError } from '../src/core/errors.js';
import { createRedisConnection, type RedisConnection, type RedisConnectionOptions } from '../src/adapters/store/redis-connection.js';
import { createRedisRateLimiter } from '../src/adapters/store/redis-rate-limit.js';
import { createRedisReplayStore } from '../src/adapters/store/redis-replay.js';
import { startRedis, type RedisServer } from './support/redis.js';

const openssl = (args: string[], cwd: string) => promisify(execFile)('openssl', args, { cwd });
const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
/** The broker's ACL: its own keys, and only the commands the store and limiter send (scripts included). */
const BROKER_ACL = ['broker', 'on', '>s3cret-pass', '~oidc-broker:*', '+ping', '+set', '+get', '+del', '+eval', '+evalsha', '+hmget', '+hset', '+pexpire', '+wait'];
const inAnHour = () => new Date(Date.now() + 3_600_000);

async function makeCertificates(dir: string): Promise<void> {
  await openssl(['req', '-x509', ...P256, '-days', '1', '-subj', '/CN=Test Redis CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  await openssl(['req', ...P256, '-subj', '/CN=redis.test', '-keyout', 'server.key', '-out', 'server.csr'], dir);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '1', '-days', '1', '-extfile', 'server.ext', '-out', 'server.pem'], dir);
}

describe('Redis over TLS with an ACL user', () => {
  let dir: string;
  let redis: RedisServer;
  const connections: RedisConnection[] = [];
  const connect = (options: Partial<RedisConnectionOptions> & { url: string }) => {
    const connection = createRedisConnection(options);
    connections.push(connection);
    return connection;
  };
  const userUrl = (credentials: string) => redis.url.replace('rediss://', `rediss://${credentials}@`);

  async function readyWithin(connection: RedisConnection, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await connection.ready()) return true;
      await sleep(50);
    }
    return false;
  }

  async function assertRefused(connection: RedisConnection): Promise<void> {
    // It must never become ready; a second of retries is plenty to have connected if it could.
    assert.equal(await readyWithin(connection, 1_000), false);
    await assert.rejects(createRedisReplayStore(connection).reserve(`refused-${process.pid}`, inAnHour()), (err: unknown) => {
      assert.ok(err instanceof BrokerError);
      assert.equal(err.code, 'not_ready');
      return true;
    });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'redis-tls-'));
    await makeCertificates(dir);
    await writeFile(join(dir, 'password'), 's3cret-pass\n', { mode: 0o600 });
    redis = await startRedis({
      tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'ca.pem') },
      extraArgs: ['--user', 'default', 'off', '--user', ...BROKER_ACL],
    });
  });
  after(async () => {
    for (const connection of connections) await connection.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reserves, releases and rate-limits as the ACL user given in a rediss:// URL, trusting the configured CA', async () => {
    const connection = connect({ url: userUrl('broker:s3cret-pass'), caFile: join(dir, 'ca.pem') });
    assert.equal(await readyWithin(connection, 10_000), true);
    const store = createRedisReplayStore(connection);
    assert.equal(await store.reserve(`tls-${process.pid}`, inAnHour()), true);
    assert.equal(await store.reserve(`tls-${process.pid}`, inAnHour()), false);
    await store.release(`tls-${process.pid}`);
    assert.equal(await store.reserve(`tls-${process.pid}`, inAnHour()), true);
    const limiter = createRedisRateLimiter(connection, 1);
    assert.equal((await limiter.take('project', new Date())).ok, true);
    assert.equal((await limiter.take('project', new Date())).ok, false);
  });

  it('reads the password from a file, with the user in the URL', async () => {
    const connection = connect({ url: userUrl('broker'), caFile: join(dir, 'ca.pem'), passwordFile: join(dir, 'password') });
    assert.equal(await readyWithin(connection, 10_000), true);
    assert.equal(await createRedisReplayStore(connection).reserve(`file-${process.pid}`, inAnHour()), true);
  });

  it('is never ready with a wrong password', async () => {
    await assertRefused(connect({ url: userUrl('broker:wrong'), caFile: join(dir, 'ca.pem') }));
  });

  it('is never ready without credentials (the default user is off)', async () => {
    await assertRefused(connect({ url: redis.url, caFile: join(dir, 'ca.pem') }));
  });

  it('is never ready when the server certificate does not chain to a trusted CA', async () => {
    await assertRefused(connect({ url: userUrl('broker:s3cret-pass') }));
  });

  it('refuses a CA file with a plain redis:// URL, and other schemes, as configuration mistakes', () => {
    assert.throws(() => createRedisConnection({ url: 'redis://127.0.0.1:1', caFile: join(dir, 'ca.pem') }), TypeError);
    assert.throws(() => createRedisConnection({ url: 'http://127.0.0.1:1' }), TypeError);
  });
});
