/**
 * Keeps the last good policy. A reload that fails (bad YAML, schema, unsafe pattern) is logged and ignored, so a bad
 * push never opens or closes the gate by accident.
 */
import type { CompiledPolicy } from '../core/policy/compile.js';
import type { OperationalLog } from './deps.js';

export interface PolicyHolder {
  current(): CompiledPolicy | undefined;
  /** Load and swap in; resolves false (keeping the last good policy) when the new one does not compile. */
  reload(): Promise<boolean>;
}

/** `onOutcome` hears every load's result (the metrics), after it is logged. */
export function createPolicyHolder(load: () => Promise<CompiledPolicy>, log: OperationalLog, onOutcome?: (ok: boolean) => void): PolicyHolder {
  let current: CompiledPolicy | undefined;
  let pending: Promise<boolean> | undefined;
  let again: Promise<boolean> | undefined;
  async function doReload(): Promise<boolean> {
    try {
      const next = await load();
      const first = current === undefined;
      current = next;
      log.info(first ? 'policy loaded' : 'policy reloaded', { rules: next.rules.length, sources: next.sources });
      onOutcome?.(true);
      return true;
    } catch (err) {
      log.error(current ? 'policy reload failed; keeping the last good policy' : 'policy failed to load', { error: (err as Error).message });
      onOutcome?.(false);
      return false;
    }
  }
  return {
    current: () => current,
    reload() {
      // A change that lands while a reload runs may not have been read by it: run once more afterwards.
      if (pending) {
        again ??= pending.then(() => {
          again = undefined;
          return this.reload();
        });
        return again;
      }
      pending = doReload().finally(() => {
        pending = undefined;
      });
      return pending;
    },
  };
}
