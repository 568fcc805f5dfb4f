/**
 * Holding the migration lease for the length of a run: wait for it (printing who holds it and until when), take it
 * when free or expired, renew it on a timer, and notice when it was lost so the run stops before its next version.
 */
import { randomUUID } from 'node:crypto';
import { BrokerError } from '../core/errors.js';
import { describeHolder, renewInterval } from '../core/spanner/lease.js';
import type { MigrationStore } from './store.js';

export interface LeaseOptions {
  readonly leaseMs: number;
  readonly lockTimeoutMs: number;
  readonly log: (line: string) => void;
  readonly clock: () => number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const isAlreadyExists = (err: unknown): boolean => (err as { code?: unknown })?.code === 6;

export class LeaseKeeper {
  readonly token = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private lostError: BrokerError | undefined;
  /** The renewal in flight, if any; there is never more than one. */
  private renewal: Promise<void> | undefined;
  /** Milliseconds each successful renewal took, for the benchmark. */
  readonly renewals: number[] = [];

  constructor(private readonly store: MigrationStore, private readonly options: LeaseOptions) {}

  /** Waits up to the lock timeout; throws `lock_held` naming the holder when it runs out. */
  async acquire(): Promise<void> {
    const { clock, log, leaseMs, lockTimeoutMs } = this.options;
    const deadline = clock() + lockTimeoutMs;
    const pollMs = Math.min(1000, Math.max(100, Math.floor(leaseMs / 4)));
    let lastLine = '';
    let lastPrinted = 0;
    for (;;) {
      let result;
      try {
        result = await this.store.tryAcquire(this.token, leaseMs);
      } catch (err) {
        if (isAlreadyExists(err)) continue; // another run inserted the lease row first: read it again
        throw err;
      }
      if (result.action === 'take') {
        if (result.expired) log(`took over the expired lock of ${result.expired.owner} (expired ${result.expired.expiresAt.toISOString()})`);
        this.startRenewing();
        return;
      }
      const holder = describeHolder(result.holder, result.now);
      if (clock() >= deadline) {
        throw new BrokerError('lock_held', `the migration lock is held by ${holder}; gave up after --lock-timeout ${Math.round(lockTimeoutMs / 1000)}s`);
      }
      const line = `waiting for the migration lock held by ${result.holder.owner} until ${result.holder.expiresAt.toISOString()}`;
      if (line !== lastLine || clock() - lastPrinted >= 10_000) {
        log(line);
        lastLine = line;
        lastPrinted = clock();
      }
      await sleep(Math.max(10, Math.min(pollMs, deadline - clock())));
    }
  }

  private startRenewing(): void {
    this.timer = setInterval(() => {
      // A renewal can outlast a tick (Spanner retries an aborted transaction after a second or two). Starting another
      // would contend with it for the same row, and release() could then return while one still runs against a
      // connection about to close, so a slow renewal makes the next tick wait.
      if (this.renewal) return;
      this.renewal = this.renewOnce().finally(() => { this.renewal = undefined; });
    }, renewInterval(this.options.leaseMs / 1000));
  }

  private async renewOnce(): Promise<void> {
    const started = this.options.clock();
    try {
      if (await this.store.renew(this.token, this.options.leaseMs)) {
        this.renewals.push(this.options.clock() - started);
        return;
      }
      this.lostError = new BrokerError('lock_held', 'the migration lock was taken over or force-unlocked while this run held it: stopping before the next version');
      this.stopTimer();
    } catch (err) {
      // A failed renewal is retried on the next tick; the lease outlives two missed renewals.
      this.options.log(`could not renew the migration lock (will retry): ${(err as Error).message}`);
    }
  }

  /** Throws if the lease was lost; called before each version. */
  check(): void {
    if (this.lostError) throw this.lostError;
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops renewing, waits for a renewal in flight, and deletes the lease row if it is still ours. */
  async release(): Promise<void> {
    this.stopTimer();
    await this.renewal;
    if (!this.lostError) await this.store.release(this.token);
  }
}
