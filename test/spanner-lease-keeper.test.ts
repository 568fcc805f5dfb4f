/**
 * The lease keeper's renewal timer against an in-memory store whose renewals take as long as the test says: a slow
 * renewal is never joined by a second one, and release() waits for it before deleting the row (after release the
 * connection closes, and a renewal still running then calls a closed Spanner client).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaseKeeper } from '../src/spanner/lease-keeper.js';
import type { MigrationStore } from '../src/spanner/store.js';

/** A store that takes the lease at once and holds each renewal open until the test finishes it. */
function slowRenewalStore() {
  const events: string[] = [];
  const pending: (() => void)[] = [];
  let renewStarted: () => void = () => undefined;
  const firstRenewal = new Promise<void>((resolve) => { renewStarted = resolve; });
  const store = {
    async tryAcquire() {
      return { action: 'take' as const, expired: undefined, now: new Date() };
    },
    renew(): Promise<boolean> {
      events.push('renew started');
      renewStarted();
      return new Promise((resolve) => pending.push(() => {
        events.push('renew finished');
        resolve(true);
      }));
    },
    async release() {
      events.push('release');
    },
  };
  return { store: store as unknown as MigrationStore, events, pending, firstRenewal };
}

describe('lease keeper renewals', () => {
  it('runs one renewal at a time, and release waits for the one in flight before deleting the lease', async () => {
    const { store, events, pending, firstRenewal } = slowRenewalStore();
    // The shortest lease renews every 200 ms; the first renewal is held open across several ticks.
    const keeper = new LeaseKeeper(store, { leaseMs: 600, lockTimeoutMs: 0, log: () => undefined, clock: () => performance.now() });
    await keeper.acquire();
    try {
      await firstRenewal;
      await new Promise((resolve) => setTimeout(resolve, 700));
      assert.deepEqual(events, ['renew started'], 'no second renewal while the first is in flight');

      const released = keeper.release();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(events, ['renew started'], 'release waits for the renewal in flight');
      pending.shift()?.();
      await released;
      assert.deepEqual(events, ['renew started', 'renew finished', 'release']);

      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(events, ['renew started', 'renew finished', 'release'], 'no renewal after release');
    } finally {
      // Whatever failed above, no renewal stays pending and the timer stops, so the file ends.
      for (const finish of pending.splice(0)) finish();
      await keeper.release();
    }
  });
});
