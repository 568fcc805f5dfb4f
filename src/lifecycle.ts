/**
 * The process around a broker: SIGHUP reloads, policy file watching, and SIGINT/SIGTERM shutdown. Kept out of the
 * composition root so main.ts only wires.
 */
import { watch, type FSWatcher } from 'node:fs';
import { constants } from 'node:os';
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

/**
 * On the first SIGINT or SIGTERM: `stop` (the graceful drain), then exit 0, or 1 when stopping failed. A second signal
 * while it drains exits at once with 128 + the signal's number, as a shell reports a killed process.
 */
export function exitOnStopSignals(stop: () => Promise<void>, log: OperationalLog): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second stop signal: exiting without waiting for requests in flight', { signal });
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    stopping = true;
    log.info('stopping: no new connections, finishing requests in flight', { signal });
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
