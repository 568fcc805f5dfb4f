/**
 * The per-key request budget shared by every replica through Redis: the same token bucket as the in-process limiter
 * (`perMinute` units, refilled continuously, a burst of `perMinute`), kept in one hash per key and updated by one Lua
 * script, so concurrent replicas never both spend the last unit. Redis down → BrokerError('not_ready').
 */
import { createHash } from 'node:crypto';
import type { RateDecision, RateLimiter } from '../../ports.js';
import { luaScript, type RedisConnection } from './redis-connection.js';

// KEYS[1] bucket; ARGV: capacity, refill per ms, now (ms), spend (1 = take, 0 = peek). Returns the wait in ms, 0 if ok.
// Time comes from the caller (replicas' clocks are NTP-synchronised); a clock behind the stored one refills nothing.
const TAKE = luaScript(`local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
if tokens < 1 then
  return math.max(1, math.ceil((1 - tokens) / rate))
end
if ARGV[4] == '1' then
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
end
return 0`);

const ALLOWED: RateDecision = Object.freeze({ ok: true, retryAfterSeconds: 0 });

export interface RedisRateLimitOptions {
  /** Prepended to every key (default `oidc-broker:`). */
  readonly keyPrefix?: string;
}

/**
 * `perMinute` 0 disables limiting (no Redis call at all).
 *
 * @example createRedisRateLimiter(connection, 60).take(`${issuer}\n${projectId}`, new Date())
 */
export function createRedisRateLimiter(redis: RedisConnection, perMinute: number, options: RedisRateLimitOptions = {}): RateLimiter {
  const prefix = `${options.keyPrefix ?? 'oidc-broker:'}rate:`;
  const refillPerMs = perMinute / 60_000;
  const args = [String(perMinute), String(refillPerMs)];

  async function decide(key: string, now: Date, spend: boolean): Promise<RateDecision> {
    if (perMinute <= 0) return ALLOWED;
    const bucket = prefix + createHash('sha256').update(key).digest('hex');
    const waitMs = Number(await redis.evalScript(TAKE, [bucket], [...args, String(now.getTime()), spend ? '1' : '0']));
    return waitMs <= 0 ? ALLOWED : { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  return {
    take: (key, now) => decide(key, now, true),
    peek: (key, now) => decide(key, now, false),
  };
}
