/**
 * An error that escaped a command → the line the user reads and the exit code docs/cli.md promises:
 * 2 for usage and configuration errors (a missing file is "file not found: PATH"), 3 for an unavailable upstream,
 * 1 otherwise.
 */
import { ConfigError } from '../config/load.js';
import { isBrokerError } from '../core/errors.js';
import { PolicyError } from '../core/policy/compile.js';
import { FileNotFoundError } from './options.js';
import { EXIT } from './output.js';

function missingFile(err: unknown): string | undefined {
  for (let current = err; current instanceof Error; current = (current as Error & { cause?: unknown }).cause) {
    const errno = current as NodeJS.ErrnoException;
    if (errno.code === 'ENOENT' && typeof errno.path === 'string') return errno.path;
  }
  return undefined;
}

export function describeFailure(err: unknown): { message: string; exitCode: number } {
  const missing = missingFile(err);
  if (missing !== undefined) return { message: `file not found: ${missing}`, exitCode: EXIT.usage };
  if (err instanceof FileNotFoundError || err instanceof ConfigError || err instanceof PolicyError) return { message: err.message, exitCode: EXIT.usage };
  if (isBrokerError(err)) {
    const upstream = err.code === 'upstream_unavailable' || err.code === 'not_ready' || err.code === 'audit_unavailable';
    return { message: `${err.code}: ${err.detail}`, exitCode: upstream ? EXIT.upstream : EXIT.denied };
  }
  return { message: (err as Error).message ?? String(err), exitCode: EXIT.denied };
}
