/**
 * `oidc-broker doctor --config F`: preflight before serving. Config, policy (and its lint findings), each issuer's
 * discovery and keys, the GitLab API token's scopes, the signing keys, and the CA chain and its expiry.
 */
import type { Command } from 'commander';
import { doctorCa } from '../adapters/ca/index.js';
import { createTokenReader } from '../adapters/gitlab/api-client.js';
import { createIdTokenVerifier } from '../adapters/gitlab/verifier.js';
import { createJwtSigner, readSigningJwks } from '../adapters/jwt/signer.js';
import { loadPolicy } from '../adapters/policy/load.js';
import { loadConfig } from '../config/load.js';
import type { BrokerConfig } from '../config/schema.js';
import { lintPolicy } from '../core/policy/lint.js';
import { trustedIssuers } from '../main.js';
import { checkSecretFilePermissions } from './doctor-files.js';
import { configPathOrUsage, EXIT, printTable } from './output.js';

type Status = 'ok' | 'warn' | 'fail' | 'unreachable';
type Row = [status: Status, check: string, detail: string];

async function checkIssuers(config: BrokerConfig): Promise<Row[]> {
  const rows: Row[] = [];
  const tokens = createTokenReader(new Map(config.gitlab.map((entry) => [entry.issuer, entry.apiTokenFile])));
  for (const issuer of trustedIssuers(config)) {
    const verifier = createIdTokenVerifier({ issuers: [issuer] });
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

export async function runDoctor(configPath: string): Promise<{ rows: Row[]; exitCode: number }> {
  const rows: Row[] = [];
  let config: BrokerConfig;
  try {
    config = await loadConfig(configPath);
    rows.push(['ok', 'config', configPath]);
  } catch (err) {
    return { rows: [['fail', 'config', (err as Error).message]], exitCode: EXIT.denied };
  }
  try {
    const policy = await loadPolicy(config.policy.path);
    const findings = lintPolicy(policy);
    rows.push([findings.some((finding) => finding.severity === 'error') ? 'fail' : 'ok', 'policy', `${policy.rules.length} rules`]);
    for (const finding of findings) rows.push([finding.severity === 'error' ? 'fail' : 'warn', `policy rule ${finding.rule}`, finding.message]);
  } catch (err) {
    rows.push(['fail', 'policy', (err as Error).message]);
  }
  try {
    await createJwtSigner(config.server.publicUrl, await readSigningJwks(config.signing.keysFile));
    rows.push(['ok', 'signing keys', config.signing.keysFile]);
  } catch (err) {
    rows.push(['fail', 'signing keys', (err as Error).message]);
  }
  if (config.linkerd) {
    const report = doctorCa(config.linkerd, new Date());
    if (report.ok) rows.push(['ok', 'linkerd CA', "chain, CA, validity, key ok; nothing Linkerd's proxy or Go refuses"]);
    for (const error of report.errors) rows.push(['fail', 'linkerd CA', error]);
    for (const warning of report.warnings) rows.push(['warn', 'linkerd CA', warning]);
  }
  rows.push(...(await checkSecretFilePermissions(config)));
  rows.push(...(await checkIssuers(config)));
  const exitCode = rows.some(([status]) => status === 'fail') ? EXIT.denied : rows.some(([status]) => status === 'unreachable') ? EXIT.upstream : EXIT.ok;
  return { rows, exitCode };
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('preflight: config, policy, issuers and JWKS, GitLab token scopes, signing keys, CA chain and expiry')
    .option('--config <file>', 'broker config (or BROKER_CONFIG)')
    .option('--json', 'print the checks as JSON ({ exitCode, checks: [{ status, check, detail }] })')
    .action(async (options: { config?: string; json?: boolean }) => {
      const path = configPathOrUsage('doctor', options.config);
      if (!path) return;
      const { rows, exitCode } = await runDoctor(path);
      if (options.json) console.log(JSON.stringify({ exitCode, checks: rows.map(([status, check, detail]) => ({ status, check, detail })) }, null, 2));
      else printTable(['status', 'check', 'detail'], rows); // long details wrap within their column
      process.exitCode = exitCode;
    });
}
