import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { configSchema, type BrokerConfig } from './schema.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parse and validate config text; relative file paths are resolved against `baseDir`. Errors are prefixed "config:". */
export function parseConfig(text: string, baseDir: string): BrokerConfig {
  let data: unknown;
  try {
    data = parse(text, { uniqueKeys: true, maxAliasCount: 0 });
  } catch (err) {
    throw new ConfigError(`config: YAML: ${(err as Error).message}`, { cause: err });
  }
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `config: ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(lines.join('\n'));
  }
  const config = parsed.data;
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const resolved: BrokerConfig = {
    ...config,
    gitlab: config.gitlab.map((entry) => ({ ...entry, apiTokenFile: entry.apiTokenFile === undefined ? undefined : at(entry.apiTokenFile) })),
    policy: { ...config.policy, path: at(config.policy.path) },
    audit: config.audit.file === undefined ? {} : { file: at(config.audit.file) },
    signing: { keysFile: at(config.signing.keysFile) },
    linkerd: config.linkerd && {
      ...config.linkerd,
      issuerCertFile: at(config.linkerd.issuerCertFile),
      issuerKeyFile: at(config.linkerd.issuerKeyFile),
      trustAnchorsFile: at(config.linkerd.trustAnchorsFile),
    },
  };
  const issuers = new Set<string>();
  for (const entry of resolved.gitlab) {
    if (issuers.has(entry.issuer)) throw new ConfigError(`config: gitlab: issuer ${entry.issuer} is listed twice`);
    issuers.add(entry.issuer);
  }
  return Object.freeze(resolved);
}

export async function loadConfig(path: string): Promise<BrokerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(missing ? `config: file not found: ${path}` : `config: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, dirname(resolve(path)));
}
