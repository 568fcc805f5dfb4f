/** The CLI's version: package.json's, which ships in every install (npm always packs package.json). */
import { readFileSync } from 'node:fs';

export const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

export function cliVersion(): string {
  const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string') throw new TypeError('package.json has no version');
  return version;
}
