/** The Google adapter's retry loop: full-jitter pauses, non-retryable errors at once, and the deadline obeyed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, DEFAULT_RETRY_POLICY, RetriesExhausted, withRetries } from '../src/adapters/google/retry.js';

describe('retries with jitter inside a deadline', () => {
  it('draws each pause from [0, min(cap, base·2^n))', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, capDelayMs: 1000 };
    assert.equal(backoffDelay({ ...policy, random: () => 0.999 }, 0), 99);
    assert.equal(backoffDelay({ ...policy, random: () => 0.999 }, 3), 799);
    assert.equal(backoffDelay({ ...policy, random: () => 0.999 }, 10), 999);
    assert.equal(backoffDelay({ ...policy, random: () => 0 }, 5), 0);
  });

  it('rethrows an error that is not retryable at once', async () => {
    let calls = 0;
    const denied = new Error('denied');
    await assert.rejects(withRetries(async () => { calls += 1; throw denied; }, () => false, AbortSignal.timeout(1000)), (err) => err === denied);
    assert.equal(calls, 1);
  });

  it('stops at the deadline during a pause, keeping the last failure', async () => {
    const policy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 10, baseDelayMs: 10_000, capDelayMs: 10_000, random: () => 0.99 };
    const controller = new AbortController();
    const flaky = new Error('503');
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    await assert.rejects(withRetries(async () => { throw flaky; }, () => true, controller.signal, policy), (err) => {
      assert.ok(err instanceof RetriesExhausted);
      assert.equal(err.lastError, flaky);
      assert.equal(err.deadlinePassed, true);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'the 9.9 s pause was cut short');
  });
});
