/**
 * Parsers for option values. Each throws commander's InvalidArgumentError, so the message names the option
 * (`error: option '--port <n>' argument 'abc' is invalid. …`) and the exit code is the usage code (2).
 */
import { access } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';

/** Levels of the operational log (winston's npm levels that the broker uses). */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

/** A TCP port, 0 (any free port) to 65535. */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(port) || port > 65535) throw new InvalidArgumentError('a port is a whole number from 0 to 65535.');
  return port;
}

/** A positive number of seconds (fractions allowed). */
export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('expected a positive number of seconds.');
  return seconds;
}

/** A parser accepting one of `choices` (commander's `.choices()` also works, but this keeps the message uniform). */
export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}.`);
    return value as T;
  };
}

/**
 * A list of grants as GitLab's interpolation of an `array` input spells it: JSON (`["token","linkerd"]`,
 * `["token", "linkerd"]`), a YAML flow sequence (`[token, linkerd]`, `[token=https://aud]`) or a word list
 * (`token linkerd`).
 * @example parseGrantList('[token, linkerd]') // ['token', 'linkerd']
 */
export function parseGrantList(value: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    try {
      parsed = parseYaml(value);
    } catch {
      throw new InvalidArgumentError('expected a JSON array such as ["token","linkerd"].');
    }
  }
  // A plain word list ("token linkerd", "token,linkerd") is what the classic template's variable used to hold.
  if (typeof parsed === 'string') parsed = parsed.split(/[\s,]+/).filter(Boolean);
  if (!Array.isArray(parsed)) throw new InvalidArgumentError('expected a JSON array such as ["token","linkerd"].');
  const items = parsed.map((item) => (typeof item === 'string' ? item.trim() : undefined));
  if (items.some((item) => !item)) throw new InvalidArgumentError('every element must be a grant name: google, linkerd, token or token=AUDIENCE.');
  return items as string[];
}

/** "file not found: PATH" instead of a raw ENOENT, for options and arguments that name an input file or directory. */
export async function assertReadable(path: string): Promise<void> {
  try {
    await access(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FileNotFoundError(code === 'ENOENT' ? `file not found: ${path}` : `cannot read ${path}: ${code ?? (err as Error).message}`);
  }
}

/** A named input file is missing or unreadable: a usage error (exit 2). */
export class FileNotFoundError extends Error {
  override readonly name = 'FileNotFoundError';
}
