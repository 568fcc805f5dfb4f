/**
 * Replay store on Redis, shared by every replica: `SET key <random> NX PXAT <hold-until>` reserves a jti atomically
 * across replicas; release is a compare-and-delete, so it removes only the reservation this store made and never one
 * made since by another request (after ours expired). Redis down → BrokerError('not_ready'), nothing reserved.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BrokerError } from '../../core/errors.js';
import type { ReplayStore } from '../../ports.js';
import { luaScript, type RedisConnection } from './redis-connection.js';

const COMPARE_AND_DELETE = luaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

export interface RedisReplayOptions {
  /** Prepended to every key, so several brokers can share one Redis (default `oidc-broker:`). */
  readonly keyPrefix?: string;
  /**
   * How long after reserving a release can still undo the reservation (default 2 min, beyond any request's deadline:
   * the server cuts requests at 30 s). The values needed for release are kept in memory this long (about 100 bytes per
   * exchange); a later release leaves the jti spent (fail closed).
   */
  readonly releaseWindowMs?: number;
  /**
   * Replicas that must acknowledge a reservation (WAIT) before it counts (default 0). Narrows the failover window in
   * which a reservation acknowledged only by the old primary is lost; an unacknowledged one is undone and the
   * exchange refused with not_ready.
   */
  readonly waitReplicas?: number;
  readonly now?: () => number;
}

interface Reservation {
  readonly value: string;
  readonly reservedAt: number;
  readonly expiresAt: number;
}

/**
 * @example createRedisReplayStore(createRedisConnection({ url: 'rediss://broker@redis.internal:6380', caFile }))
 */
export function createRedisReplayStore(redis: RedisConnection, options: RedisReplayOptions = {}): ReplayStore {
  const prefix = `${options.keyPrefix ?? 'oidc-broker:'}jti:`;
  const releaseWindowMs = options.releaseWindowMs ?? 2 * 60_000;
  const now = options.now ?? Date.now;
  const waitReplicas = options.waitReplicas ?? 0;
  // Insertion order is reservation order, so the oldest entries are always at the front.
  const reservations = new Map<string, Reservation>();

  // Keys are hashed: fixed length whatever the issuer URL and jti, and no token material in Redis.
  const redisKey = (key: string) => prefix + createHash('sha256').update(key).digest('hex');

  async function confirmReplicated(redisKey: string, value: string): Promise<void> {
    const acknowledged = await redis.waitForReplicas(waitReplicas);
    if (acknowledged >= waitReplicas) return;
    await redis.evalScript(COMPARE_AND_DELETE, [redisKey], [value]);
    throw new BrokerError('not_ready', `Redis (${redis.target}): ${acknowledged} of ${waitReplicas} replicas acknowledged the reservation`);
  }

  function forgetOld(at: number): void {
    for (const [key, reservation] of reservations) {
      if (reservation.reservedAt + releaseWindowMs > at) break;
      reservations.delete(key);
    }
  }

  return {
    async reserve(key, expiresAt) {
      const at = now();
      forgetOld(at);
      const value = randomBytes(16).toString('base64url');
      if (!(await redis.setIfAbsent(redisKey(key), value, expiresAt.getTime()))) return false;
      if (waitReplicas > 0) await confirmReplicated(redisKey(key), value);
      reservations.delete(key);
      reservations.set(key, { value, reservedAt: at, expiresAt: expiresAt.getTime() });
      return true;
    },
    async release(key) {
      const reservation = reservations.get(key);
      reservations.delete(key);
      const at = now();
      // Our reservation has lapsed: whatever holds the key now belongs to someone else.
      if (reservation === undefined || reservation.expiresAt <= at || reservation.reservedAt + releaseWindowMs <= at) return;
      await redis.evalScript(COMPARE_AND_DELETE, [redisKey(key)], [reservation.value]);
    },
    ready: () => redis.ready(),
  };
}
