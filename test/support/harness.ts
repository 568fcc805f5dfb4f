/**
 * Starts a real broker (createBroker, real HTTP on 127.0.0.1:0) against the stand-in GitLab, with the policy, signing
 * keys, API token and audit log in a temporary directory, and helpers to call it and read what it logged.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningJwks } from '../../src/adapters/jwt/signer.js';
import type { OperationalLog } from '../../src/app/deps.js';
import { parseConfig } from '../../src/config/load.js';
import { createBroker, type Broker, type BrokerOverrides } from '../../src/main.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './gitlab.js';
import { AUDIENCE, CORE_POLICY } from './policies.js';

export interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: Record<string, unknown>;
}

export interface Harness {
  readonly gitlab: StandInGitLab;
  readonly broker: Broker;
  readonly url: string;
  readonly dir: string;
  readonly opsLog: string[];
  call(path: string, options?: { token?: string; body?: string | object; headers?: Record<string, string>; method?: string }): Promise<CallResult>;
  exchange(token: string, grants?: object): Promise<CallResult>;
  auditText(): Promise<string>;
  auditRecords(): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly policy?: string;
  readonly auditFile?: string;
  readonly overrides?: BrokerOverrides;
  readonly configExtra?: string;
  readonly gitlab?: StandInGitLab;
  readonly requestsPerMinutePerProject?: number;
  /** limits.factTimeout (default 2s). */
  readonly factTimeout?: string;
  /** Extra keys of the gitlab issuer entry, as YAML lines (e.g. `requestTimeout: 1s`). */
  readonly issuerExtra?: string;
  readonly trustProxy?: boolean;
  /** More `server:` keys, as YAML flow-mapping entries (`keepAliveTimeout: 1s`). */
  readonly server?: string;
  /** More `limits:` keys, as YAML flow-mapping entries (`failedAuthPerMinutePerAddress: 3`). */
  readonly limits?: string;
}

export function capturingLog(lines: string[]): OperationalLog {
  const push = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(meta ?? {})}`);
  return { error: push('error'), warn: push('warn'), info: push('info') };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const gitlab = options.gitlab ?? (await startGitLab());
  gitlab.setJob('20', '302', 'running');
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-test-'));
  await mkdir(join(dir, 'policy'));
  await writeFile(join(dir, 'policy', '10-core.yaml'), options.policy ?? CORE_POLICY);
  await writeFile(join(dir, 'gitlab-token'), `${API_TOKEN}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'signing.jwks.json'), JSON.stringify(await generateSigningJwks()), { mode: 0o600 });
  const auditFile = options.auditFile ?? join(dir, 'audit.log');
  const config = parseConfig(
    `
server: { host: 127.0.0.1, port: 0, publicUrl: ${AUDIENCE}, trustProxy: ${options.trustProxy ?? false}${options.server ? `, ${options.server}` : ''} }
gitlab:
  - issuer: ${gitlab.issuer}
    audience: ${AUDIENCE}
    apiTokenFile: gitlab-token
    maxTokenAge: 2h
${options.issuerExtra ? `    ${options.issuerExtra}\n` : ''}policy: { path: policy, watch: false }
audit: { file: ${auditFile} }
signing: { keysFile: signing.jwks.json }
limits: { factTimeout: ${options.factTimeout ?? '2s'}, requestsPerMinutePerProject: ${options.requestsPerMinutePerProject ?? 0}${options.limits ? `, ${options.limits}` : ''} }
${options.configExtra ?? ''}`,
    dir,
  );
  const opsLog: string[] = [];
  const broker = await createBroker(config, { log: capturingLog(opsLog), defaultMetrics: false, jwksCooldownMs: 30_000, ...options.overrides });
  const url = await broker.listen(0, '127.0.0.1');

  async function call(path: string, callOptions: { token?: string; body?: string | object; headers?: Record<string, string>; method?: string } = {}): Promise<CallResult> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...callOptions.headers };
    if (callOptions.token !== undefined) headers.authorization = `Bearer ${callOptions.token}`;
    const body = callOptions.body === undefined ? undefined : typeof callOptions.body === 'string' ? callOptions.body : JSON.stringify(callOptions.body);
    const response = await fetch(`${url}${path}`, { method: callOptions.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
    const text = await response.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON (metrics, PEM)
    }
    return { status: response.status, headers: response.headers, text, body: parsed };
  }

  return {
    gitlab, broker, url, dir, opsLog, call,
    exchange: (token, grants = { token: {} }) => call('/v1/exchange', { token, body: { grants } }),
    auditText: () => readFile(auditFile, 'utf8').catch(() => ''),
    async auditRecords() {
      const text = await readFile(auditFile, 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async close() {
      await broker.close();
      if (!options.gitlab) await gitlab.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
