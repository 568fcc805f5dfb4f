/**
 * A per-project budget of GitLab approval lookups, and of job lookups after a token's first (client.ts). Explain never
 * spends the jti and a denied exchange releases it, so without a bound one job token could drive unlimited calls on
 * the broker's shared API token. Fixed windows: simple, and a burst at a window's edge is at most twice the budget.
 */

const MAX_KEYS = 10_000;

export interface LookupBudgetOptions {
  /** Lookups each project may start per window; 0 turns the budget off. */
  readonly perProject: number;
  readonly windowMs: number;
}

export interface LookupBudget {
  /** Spend one lookup of `key`'s budget at `nowMs`; when none is left, how many seconds until the window resets. */
  take(key: string, nowMs: number): { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };
}

/** @example createLookupBudget({ perProject: 60, windowMs: 60_000 }).take('https://gitlab.example.com\n20', Date.now()) */
export function createLookupBudget(options: LookupBudgetOptions): LookupBudget {
  const windows = new Map<string, { start: number; used: number }>();
  return {
    take(key, nowMs) {
      if (options.perProject <= 0) return { ok: true };
      let window = windows.get(key);
      if (window === undefined || nowMs - window.start >= options.windowMs) {
        if (window === undefined && windows.size >= MAX_KEYS) {
          for (const [stale, entry] of windows) if (nowMs - entry.start >= options.windowMs) windows.delete(stale);
          if (windows.size >= MAX_KEYS) windows.clear();
        }
        window = { start: nowMs, used: 0 };
        windows.set(key, window);
      }
      if (window.used >= options.perProject) {
        return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((window.start + options.windowMs - nowMs) / 1000)) };
      }
      window.used += 1;
      return { ok: true };
    },
  };
}
