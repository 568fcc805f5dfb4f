/** A token bucket per key (project), in process. `perMinute` 0 disables limiting. */
import type { RateLimiter } from '../../ports.js';

export function createMemoryRateLimiter(perMinute: number, maxKeys = 100_000): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refillPerMs = perMinute / 60_000;
  return {
    take(key, now) {
      if (perMinute <= 0) return { ok: true, retryAfterSeconds: 0 };
      const at = now.getTime();
      const bucket = buckets.get(key) ?? { tokens: perMinute, at };
      bucket.tokens = Math.min(perMinute, bucket.tokens + (at - bucket.at) * refillPerMs);
      bucket.at = at;
      if (buckets.size >= maxKeys && !buckets.has(key)) buckets.clear(); // bounded memory under key floods
      buckets.set(key, bucket);
      if (bucket.tokens < 1) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000)) };
      bucket.tokens -= 1;
      return { ok: true, retryAfterSeconds: 0 };
    },
  };
}
