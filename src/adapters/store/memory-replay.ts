/** In-process replay store: correct for one replica only; several replicas share redis-replay.ts. */
import type { ReplayStore } from '../../ports.js';

export function createMemoryReplayStore(now: () => number = Date.now): ReplayStore {
  const reserved = new Map<string, number>();
  let nextSweep = 0;

  function sweep(at: number): void {
    if (at < nextSweep) return;
    nextSweep = at + 10_000;
    for (const [key, until] of reserved) if (until <= at) reserved.delete(key);
  }

  return {
    async reserve(key: string, expiresAt: Date): Promise<boolean> {
      const at = now();
      sweep(at);
      const until = reserved.get(key);
      if (until !== undefined && until > at) return false;
      reserved.set(key, expiresAt.getTime());
      return true;
    },
    async release(key: string): Promise<void> {
      reserved.delete(key);
    },
    async ready(): Promise<boolean> {
      return true;
    },
  };
}
