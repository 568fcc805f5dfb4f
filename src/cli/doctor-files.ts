/** Doctor's check of the secret files a config names: private keys and API tokens must not be open to other users. */
import { stat } from 'node:fs/promises';
import type { BrokerConfig } from '../config/schema.js';

type Row = ['ok' | 'warn', string, string];

/** The secret files of a config, with what each one is. */
export function secretFiles(config: BrokerConfig): [label: string, path: string][] {
  const files: [string, string][] = [];
  if (config.signing.keysFile !== '(ephemeral)') files.push(['signing keys', config.signing.keysFile]);
  if (config.linkerd) files.push(['linkerd issuer key', config.linkerd.issuerKeyFile]);
  for (const entry of config.gitlab) if (entry.apiTokenFile) files.push([`GitLab API token of ${entry.issuer}`, entry.apiTokenFile]);
  return files;
}

/** A warning per secret file that its group or other users can read or write (mode & 0o077). */
export async function checkSecretFilePermissions(config: BrokerConfig): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [label, path] of secretFiles(config)) {
    const mode = await stat(path).then((info) => info.mode & 0o777, () => undefined);
    if (mode === undefined) continue; // a missing file is reported by the check that reads it
    const open = (mode & 0o077) !== 0;
    rows.push(open
      ? ['warn', `permissions ${label}`, `${path} is mode ${mode.toString(8).padStart(4, '0')}: readable by other users; chmod 600 ${path}`]
      : ['ok', `permissions ${label}`, `${path} is mode ${mode.toString(8).padStart(4, '0')}`]);
  }
  return rows;
}
