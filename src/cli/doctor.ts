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
import { checkGoogle, type DoctorRow } from './doctor-google.js';
import { configPathOrUsage, EXIT, printTable, TABLE_CELL_WIDTH } from './output.js';

type Row = DoctorRow;

async function checkIssuers(config: BrokerConfig): Promise<Row[]> {
  const rows: Row[] = [];
  const tokens = createTokenReader(new Map(config.gitlab.map((entry) => [entry.issuer, entry.apiTokenFile])));
  for (const issuer of trustedIssuers(config)) {
    const verifier = buildVerifier(config, [issuer]);
    const ready = await verifier.ready();
    rows.push([ready ? 'ok' : 'unreachable', `issuer ${issuer.issuer}`, ready ? 'discovery and JWKS loaded' : 'discovery or JWKS could not be loaded']);
    try {
      const token = await tokens(issuer);
      if (!token) {
        rows.push(['warn', `GitLab API ${issuer.apiUrl}`, 'no apiTokenFile: job and approval lookups will fail for private projects']);
        continue;
      }
      const response = await fetch(`${issuer.apiUrl.replace(/\/$/, '')}/personal_access_tokens/self`, { headers: { 'PRIVATE-TOKEN': token }, redirect: 'manual', signal: AbortSignal.timeout(5000) });
      if (!response.ok) {
        rows.push([response.status === 401 ? 'fail' : 'unreachable', `GitLab API ${issuer.apiUrl}`, `token check answered HTTP ${response.status}`]);
        continue;
      }
      const scopes = ((await response.json()) as { scopes?: string[] }).scopes ?? [];
      const enough = scopes.includes('read_api') || scopes.includes('api');
      rows.push([enough ? 'ok' : 'fail', `GitLab API ${issuer.apiUrl}`, `token scopes: ${scopes.join(', ') || '(none)'}${enough ? '' : ' — needs read_api'}`]);
    } catch (err) {
      rows.push(['unreachable', `GitLab API ${issuer.apiUrl}`, (err as Error).message]);
    }
  }
  return rows;
}

/** Config errors exit 2 (like usage errors: fix the file), failed checks 1, unreachable upstreams 3. */
function exitCodeOf(rows: readonly Row[], configError: boolean): number {
  if (configError) return EXIT.config;
  if (rows.some(([status]) => status === 'fail')) return EXIT.denied;
  return rows.some(([status]) => status === 'unreachable') ? EXIT.upstream : EXIT.ok;
}

export async function runDoctor(configPath: string): Promise<{ rows: Row[]; exitCode: number }> {
  const rows: Row[] = [];
  let config: BrokerConfig;
  try {
    config = await loadConfig(configPath);
    rows.push(['ok', 'config', configPath]);
  } catch (err) {
    return { rows: [['fail', 'config', (err as Error).message]], exitCode: EXIT.config };
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
    rows.push(...(await checkIssuers(config)));
    // Loads the Google client libraries, so only when the config has a google section.
    if (config.google && policy) rows.push(...(await checkGoogle(config.google, policy)));
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
    .action(async (options: { config?: string }) => {
      const path = configPathOrUsage('doctor', options.config);
      if (!path) return;
      const { rows, exitCode } = await runDoctor(path);
      printTable(['status', 'check', 'detail'], rows);
      // A finding is only useful with its reason: print in full what the table had to cut.
      for (const [status, check, detail] of rows) {
        if (status !== 'ok' && detail.length > TABLE_CELL_WIDTH) console.log(`\n${status} ${check}: ${detail}`);
      }
      process.exitCode = exitCode;
    });
}
