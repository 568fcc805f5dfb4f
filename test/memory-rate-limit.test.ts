/** The in-process token bucket behind both budgets (per project, and failed authentications per address). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryRateLimiter } from '../src/adapters/store/memory-rate-limit.js';

const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));

describe('memory rate limiter', () => {
  it('allows a minute\'s budget at once, then refuses with the seconds until the next unit', async () => {
    const limiter = createMemoryRateLimiter(3);
    for (let index = 0; index < 3; index++) assert.deepEqual(await limiter.take('project', at(0)), { ok: true, retryAfterSeconds: 0 });
    assert.deepEqual(await limiter.take('project', at(0)), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(await limiter.take('project', at(15)), { ok: false, retryAfterSeconds: 5 });
    assert.equal((await limiter.take('project', at(20))).ok, true);
  });

  it('keeps keys apart', async () => {
    const limiter = createMemoryRateLimiter(1);
    assert.equal((await limiter.take('a', at(0))).ok, true);
    assert.equal((await limiter.take('a', at(0))).ok, false);
    assert.equal((await limiter.take('b', at(0))).ok, true);
  });

  it('peek reports without spending', async () => {
    const limiter = createMemoryRateLimiter(1);
    assert.equal((await limiter.peek('a', at(0))).ok, true);
    assert.equal((await limiter.peek('a', at(0))).ok, true);
    assert.equal((await limiter.take('a', at(0))).ok, true);
    assert.deepEqual(await limiter.peek('a', at(1)), { ok: false, retryAfterSeconds: 59 });
  });

  it('0 per minute turns it off', async () => {
    const limiter = createMemoryRateLimiter(0);
    for (let index = 0; index < 100; index++) assert.equal((await limiter.take('a', at(0))).ok, true);
  });
});
