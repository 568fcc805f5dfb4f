/**
 * `oidc-broker doctor --config F`: preflight before serving. Config, policy (and its lint findings), the adapters built
 * exactly as `serve` builds them (signing keys, CA, refused sections), grants the config cannot mint, each issuer's
 * discovery and keys, the GitLab API token's scopes, the CA chain and its expiry, and whether the broker may impersonate
 * every Google service account a rule names.
 */
import type { Command } from 'commander';
import { buildAdapters, buildVerifier, mintableKinds, trustedIssuers, type Adapters } from '../adapters/build.js';
import { doctorCa } from '../adapters/ca/index.js';
import { systemClock } from '../adapters/clock.js';
import { createTokenReader } from '../adapters/gitlab/api-client.js';
import { loadPolicy } from '../adapters/policy/load.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { BrokerConfig } from '../config/schema.js';
import { unmintableGrants } from '../core/grants.js';
import type { CompiledPolicy } from '../core/policy/compile.js';
import { lintPolicy } from '../core/policy/lint.js';
import { checkGoogle } from './doctor-google.js';
import { checkSecretFilePermissions } from './doctor-files.js';
import { assertReadable, parseSeconds } from './options.js';
import { configPathOrUsage, EXIT } from './output.js';

type Status = 'ok' | 'warn' | 'fail' | 'unreachable';
type Row = [status: Status, check: string, detail: string];

/** Each network check gets this long by default; a check that takes longer is reported unreachable, naming its URL. */
export const CHECK_TIMEOUT_MS = 10_000;

function withinCheckTimeout<T>(work: Promise<T>, url: string, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from ${url} in ${timeoutMs / 1000} s`)), timeoutMs);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

async function checkIssuers(config: BrokerConfig, rows: Row[], timeoutMs: number): Promise<void> {
  const tokens = createTokenReader(new Map(config.gitlab.map((entry) => [entry.issuer, entry.apiTokenFile])));
  for (const issuer of trustedIssuers(config)) {
    let failure = '';
    const verifier = buildVerifier(config, [issuer], { issuerTimeoutMs: timeoutMs, onIssuerKeys: (event) => {
      if (!event.loaded) failure = `${event.url}: ${event.cause}`;
    } });
    const ready = await withinCheckTimeout(verifier.ready(), issuer.issuer, timeoutMs).catch((err: Error) => ((failure ||= err.message), false));
    rows.push([ready ? 'ok' : 'unreachable', `issuer ${issuer.issuer}`, ready ? 'discovery and JWKS loaded' : `discovery or JWKS could not be loaded: ${failure}`]);
    try {
      const token = await tokens(issuer);
      if (!token) {
        rows.push(['warn', `GitLab API ${issuer.apiUrl}`, 'no apiTokenFile: job and approval lookups will fail for private projects']);
        continue;
      }
      const url = `${issuer.apiUrl.replace(/\/$/, '')}/personal_access_tokens/self`;
      const response = await fetch(url, { headers: { 'PRIVATE-TOKEN': token }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) {
        rows.push([response.status === 401 ? 'fail' : 'unreachable', `GitLab API ${issuer.apiUrl}`, `token check ${url} answered HTTP ${response.status}`]);
        continue;
      }
      const scopes = ((await response.json()) as { scopes?: string[] }).scopes ?? [];
      const enough = scopes.includes('read_api') || scopes.includes('api');
      rows.push([enough ? 'ok' : 'fail', `GitLab API ${issuer.apiUrl}`, `token scopes: ${scopes.join(', ') || '(none)'}${enough ? '' : ' — needs read_api'}`]);
    } catch (err) {
      const cause = (err as Error & { cause?: { code?: string } }).cause?.code;
      rows.push(['unreachable', `GitLab API ${issuer.apiUrl}`, `${issuer.apiUrl}: ${(err as Error).message}${cause ? ` (${cause})` : ''}`]);
    }
  }
}

/**
 * The row list doctor fills; with `onRow`, each row is also handed over the moment its check finishes, so a slow or
 * hanging check never hides the ones before it. (Intercepting push keeps every check's code as plain `rows.push`.)
 */
function reportingRows(onRow: ((row: Row) => void) | undefined): Row[] {
  const rows: Row[] = [];
  if (onRow) {
    rows.push = (...items: Row[]): number => {
      for (const item of items) {
        Array.prototype.push.call(rows, item);
        onRow(item);
      }
      return rows.length;
    };
  }
  return rows;
}

/** Config errors exit 2 (like usage errors: fix the file), failed checks 1, unreachable upstreams 3. */
function exitCodeOf(rows: readonly Row[], configError: boolean): number {
  if (configError) return EXIT.config;
  if (rows.some(([status]) => status === 'fail')) return EXIT.denied;
  return rows.some(([status]) => status === 'unreachable') ? EXIT.upstream : EXIT.ok;
}

/** The Redis replay store answers (it connects in the background, so give it a few seconds). */
async function checkReplayStore(adapters: Adapters, url: string): Promise<Row> {
  const target = `${new URL(url).protocol}//${new URL(url).host}`;
  const deadline = Date.now() + 3_000;
  while (!(await adapters.replay.ready())) {
    if (Date.now() > deadline) return ['unreachable', 'replay', `Redis ${target} did not answer within 3 s (address, TLS CA, ACL user and password)`];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return ['ok', 'replay', `Redis ${target} answers`];
}

export async function runDoctor(configPath: string, options: { onRow?: (row: Row) => void; checkTimeoutMs?: number } = {}): Promise<{ rows: Row[]; exitCode: number }> {
  const rows = reportingRows(options.onRow);
  let config: BrokerConfig;
  try {
    config = await loadConfig(configPath);
    rows.push(['ok', 'config', configPath]);
  } catch (err) {
    rows.push(['fail', 'config', (err as Error).message]);
    return { rows, exitCode: EXIT.config };
  }
  let configError = false;
  let policy: CompiledPolicy | undefined;
  try {
    policy = await loadPolicy(config.policy.path);
    const findings = lintPolicy(policy);
    rows.push([findings.some((finding) => finding.severity === 'error') ? 'fail' : 'ok', 'policy', `${policy.rules.length} rules`]);
    for (const finding of findings) rows.push([finding.severity === 'error' ? 'fail' : 'warn', `policy rule ${finding.rule}`, finding.message]);
  } catch (err) {
    rows.push(['fail', 'policy', (err as Error).message]);
  }
  let adapters: Adapters | undefined;
  try {
    adapters = await buildAdapters(config);
    rows.push(['ok', 'adapters', `built as serve builds them; signing keys ${config.signing.keysFile}`]);
  } catch (err) {
    configError ||= err instanceof ConfigError;
    rows.push(['fail', 'adapters', (err as Error).message]);
  }
  try {
    if (adapters && policy) {
      for (const { rule, kind, configSection } of unmintableGrants(policy.rules, mintableKinds(adapters.minters))) {
        configError = true;
        rows.push(['fail', `policy rule ${rule}`, `grants ${kind}, but the config has no ${configSection} section to mint it`]);
      }
    }
    if (config.linkerd) {
      const report = doctorCa(config.linkerd, systemClock.now());
      if (report.ok) rows.push(['ok', 'linkerd CA', "chain, CA, validity, key ok; nothing Linkerd's proxy or Go refuses"]);
      for (const error of report.errors) rows.push(['fail', 'linkerd CA', error]);
      for (const warning of report.warnings) rows.push(['warn', 'linkerd CA', warning]);
    }
    if (adapters && config.replay.store === 'redis') rows.push(await checkReplayStore(adapters, config.replay.url));
    rows.push(...(await checkSecretFilePermissions(config)));
    await checkIssuers(config, rows, options.checkTimeoutMs ?? CHECK_TIMEOUT_MS);
    // Loads the Google client libraries, so only when the config has a google section.
    if (config.google && policy) rows.push(...(await checkGoogle(config.google, policy, options.checkTimeoutMs ?? CHECK_TIMEOUT_MS)));
  } finally {
    await adapters?.close();
  }
  return { rows, exitCode: exitCodeOf(rows, configError) };
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('preflight: config, policy, issuers and JWKS, GitLab token scopes, signing keys, CA chain and expiry, Google impersonation')
    .option('--config <file>', 'broker config (or BROKER_CONFIG)')
    .option('--json', 'print the checks as JSON ({ exitCode, checks: [{ status, check, detail }] })')
    .option('--check-timeout <seconds>', `time each network check may take (default ${CHECK_TIMEOUT_MS / 1000})`, parseSeconds)
    .action(async (options: { config?: string; json?: boolean; checkTimeout?: number }) => {
      const path = configPathOrUsage('doctor', options.config);
      if (!path) return;
      await assertReadable(path);
      // Each check is printed as it finishes; --json prints once, at the end.
      const onRow = options.json ? undefined : ([status, check, detail]: Row) => console.log(`${status.padEnd(11)} ${check}: ${detail}`);
      const { rows, exitCode } = await runDoctor(path, { onRow, checkTimeoutMs: (options.checkTimeout ?? CHECK_TIMEOUT_MS / 1000) * 1000 });
      const count = (status: Status) => rows.filter((row) => row[0] === status).length;
      if (options.json) console.log(JSON.stringify({ exitCode, checks: rows.map(([status, check, detail]) => ({ status, check, detail })) }, null, 2));
      else console.log(`${count('ok')} ok, ${count('warn')} warnings, ${count('fail')} failed, ${count('unreachable')} unreachable`);
      process.exitCode = exitCode;
    });
}
