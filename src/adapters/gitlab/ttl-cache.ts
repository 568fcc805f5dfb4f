/** A small time-bounded cache (group membership, user profiles, tokens already looked up): never used for approval results. */

const MAX_CACHE_ENTRIES = 10_000;

/** Entries expire by time; the map is swept when it grows, so it stays bounded under many distinct users. */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  constructor(private readonly ttlMs: number, private readonly clock: () => number) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.clock()) return entry.value;
    if (entry) this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= MAX_CACHE_ENTRIES) {
      const now = this.clock();
      for (const [stale, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(stale);
      if (this.entries.size >= MAX_CACHE_ENTRIES) this.entries.clear();
    }
    this.entries.set(key, { value, expiresAt: this.clock() + this.ttlMs });
  }
}
