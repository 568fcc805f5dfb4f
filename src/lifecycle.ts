/**
 * The process around a broker: SIGHUP reloads, policy file watching, and SIGINT/SIGTERM shutdown. Kept out of the
 * composition root so main.ts only wires.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { OperationalLog } from './app/deps.js';

/** Calls `onHangup` on every SIGHUP until the returned function is called. */
export function onHangup(onHangup: () => void): () => void {
  process.on('SIGHUP', onHangup);
  return () => void process.off('SIGHUP', onHangup);
}

/**
 * Calls `reload` 200 ms after the last change under `path` (editors write files in several steps). Where the platform
 * cannot watch, logs a warning: SIGHUP still reloads.
 */
export function watchPolicyFile(path: string, reload: () => void, log: OperationalLog): () => void {
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  try {
    watcher = watch(path, () => {
      clearTimeout(debounce);
      debounce = setTimeout(reload, 200);
    });
    watcher.unref();
  } catch (err) {
    log.warn('policy file watch unavailable; reload with SIGHUP', { error: (err as Error).message });
  }
  return () => {
    clearTimeout(debounce);
    watcher?.close();
  };
}

/** On SIGINT or SIGTERM: `stop`, then exit 0. */
export function exitOnStopSignals(stop: () => Promise<void>): void {
  const handler = () => void stop().finally(() => process.exit(0));
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
