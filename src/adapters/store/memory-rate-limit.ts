/** A token bucket per key (project, client address), in process: correct for one replica. `perMinute` 0 disables it. */
import type { RateDecision, RateLimiter } from '../../ports.js';

const ALLOWED: RateDecision = Object.freeze({ ok: true, retryAfterSeconds: 0 });
const ALLOWED_NOW: Promise<RateDecision> = Promise.resolve(ALLOWED);

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * `perMinute` units per key, refilled continuously, with a burst of `perMinute`. At most `maxKeys` buckets are kept:
 * a flood of new keys evicts the oldest buckets (a full bucket is the same as none) instead of growing without bound.
 */
export function createMemoryRateLimiter(perMinute: number, maxKeys = 100_000): RateLimiter {
  const buckets = new Map<string, Bucket>();
  const refillPerMs = perMinute / 60_000;

  function refilled(key: string, at: number): Bucket | undefined {
    const bucket = buckets.get(key);
    if (bucket === undefined) return undefined;
    bucket.tokens = Math.min(perMinute, bucket.tokens + (at - bucket.at) * refillPerMs);
    bucket.at = at;
    return bucket;
  }

  function refused(bucket: Bucket): RateDecision {
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000)) };
  }

  return {
    take(key, now) {
      if (perMinute <= 0) return ALLOWED_NOW;
      const at = now.getTime();
      let bucket = refilled(key, at);
      if (bucket === undefined) {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value as string);
        bucket = { tokens: perMinute, at };
        buckets.set(key, bucket);
      }
      if (bucket.tokens < 1) return Promise.resolve(refused(bucket));
      bucket.tokens -= 1;
      return ALLOWED_NOW;
    },
    peek(key, now) {
      if (perMinute <= 0) return ALLOWED_NOW;
      const bucket = refilled(key, now.getTime());
      return bucket === undefined || bucket.tokens >= 1 ? ALLOWED_NOW : Promise.resolve(refused(bucket));
    },
  };
}
