/** `oidc-broker serve` and `oidc-broker dev`: start the composition root, wait for signals. */
import { Option, type Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { createOperationalLogger } from '../adapters/audit/winston-audit.js';
import { createEphemeralCa } from '../adapters/ca/ephemeral.js';
import { generateSigningJwks } from '../adapters/jwt/signer.js';
import { loadConfig } from '../config/load.js';
import { SERVER_CONNECTION_DEFAULTS, type BrokerConfig } from '../config/schema.js';
import { createDevIssuer, DEV_ISSUER_PATH } from '../dev/dev-issuer.js';
import { refClaims } from '../dev/token-factory.js';
import { parsePort } from './options.js';
import { exitOnStopSignals } from '../lifecycle.js';
import { createBroker, type Broker, type BrokerOverrides } from '../main.js';
import { configPathOrUsage, EXIT } from './output.js';

export const EXAMPLE_POLICY_DIR = fileURLToPath(new URL('../../../examples/policy', import.meta.url));

export function devConfig(baseUrl: string, policyPath = EXAMPLE_POLICY_DIR): BrokerConfig {
  const issuer = `${baseUrl}${DEV_ISSUER_PATH}`;
  return {
    server: { host: '127.0.0.1', port: Number(new URL(baseUrl).port), publicUrl: baseUrl, trustProxy: false, ...SERVER_CONNECTION_DEFAULTS },
    gitlab: [{ issuer, audience: baseUrl, apiUrl: `${issuer}/api/v4`, apiTokenFile: undefined, maxTokenAge: 7200, requestTimeout: undefined }],
    policy: { path: policyPath, watch: false },
    replay: { store: 'memory' },
    audit: {},
    signing: { keysFile: '(ephemeral)' },
    linkerd: undefined,
    google: undefined,
    limits: { factTimeout: 5, requestsPerMinutePerProject: 0, gitlabLookupsPerProject: 60, gitlabLookupWindow: 60, failedAuthPerMinutePerAddress: 60, headersTimeout: 10 },
  };
}

/** Dev mode: a development issuer in the same process, ephemeral keys, the example policy, memory replay store. */
export async function startDevBroker(port: number, extra: BrokerOverrides = {}): Promise<{ broker: Broker; url: string; mint: (claims: Record<string, unknown>) => Promise<string> }> {
  const baseUrl = `http://127.0.0.1:${port}`;
  const devIssuer = await createDevIssuer();
  devIssuer.configure(baseUrl, baseUrl);
  const { keys } = await generateSigningJwks();
  const { ca } = await createEphemeralCa({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' });
  const broker = await createBroker(devConfig(baseUrl), { signingKeys: keys, ca, extraRoutes: devIssuer.router, ...extra });
  const url = await broker.listen(port, '127.0.0.1');
  return { broker, url, mint: (claims) => devIssuer.mint(claims) };
}

function devBanner(url: string): string {
  return [
    '',
    '  ╔══════════════════════════════════════════════════════════════════╗',
    '  ║  oidc-broker DEVELOPMENT MODE — ephemeral keys, fake issuer,      ║',
    '  ║  every job "running". Never use this for real credentials.        ║',
    '  ╚══════════════════════════════════════════════════════════════════╝',
    '',
    `  broker:        ${url}`,
    `  dev issuer:    ${url}${DEV_ISSUER_PATH}`,
    `  policy:        ${EXAMPLE_POLICY_DIR}`,
    '',
    '  Get a development ID token and exchange it:',
    `    TOKEN=$(npx oidc-broker dev token --broker ${url})`,
    `    curl -s -X POST ${url}/v1/exchange -H "Authorization: Bearer $TOKEN" \\`,
    `      -H 'Content-Type: application/json' -d '{"grants":{"token":{}}}'`,
    '',
    '  Or as a CI job would (writes linkerd/tls.crt, tls.key, ca.crt and broker-token into ./out):',
    `    BROKER_ID_TOKEN=$(npx oidc-broker dev token --broker ${url}) \\`,
    `      npx oidc-broker exchange --broker ${url} --grant linkerd --grant token --out ./out`,
    '',
    '  Explain a decision for another environment:',
    `    TOKEN=$(npx oidc-broker dev token --broker ${url} --claim environment=staging)`,
    `    curl -s -X POST ${url}/v1/explain -H "Authorization: Bearer $TOKEN" \\`,
    `      -H 'Content-Type: application/json' -d '{"grants":{"token":{}}}'`,
    '',
  ].join('\n');
}

export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('run the broker')
    .option('--config <file>', 'broker config (or BROKER_CONFIG)')
    .action(async (options: { config?: string }) => {
      const path = configPathOrUsage('serve', options.config);
      if (!path) return;
      const config = await loadConfig(path);
      const broker = await createBroker(config);
      // Before "listening", so a signal at any moment after it drains rather than kills.
      exitOnStopSignals(() => broker.close(config.server.shutdownGrace * 1000), broker.deps.log);
      const url = await broker.listen();
      createOperationalLogger().info('listening', { url, issuer: config.server.publicUrl });
      // Load every issuer's discovery and keys now: one that cannot be reached is logged (URL and cause) at start.
      void broker.deps.verifier.ready();
    });

  const dev = program.command('dev').description('development mode: a broker on an embedded default (never for production)');
  dev
    .option('--port <n>', 'port to listen on (default PORT or 8080)', parsePort)
    .action(async (options: { port?: number }) => {
      const port = options.port ?? parsePort(process.env.PORT ?? '8080');
      const { broker, url } = await startDevBroker(port);
      console.log(devBanner(url));
      exitOnStopSignals(() => broker.close(SERVER_CONNECTION_DEFAULTS.shutdownGrace * 1000), broker.deps.log);
    });
  dev
    .command('token')
    .description('print an ID token from the development issuer of a running dev broker')
    .option('--broker <url>', 'dev broker URL', `http://127.0.0.1:${process.env.PORT ?? 8080}`)
    .option('--claim <k=v>', 'override a claim (repeatable; k= removes it)', (value: string, all: string[]) => [...all, value], [] as string[])
    .addOption(new Option('--ref <branch>', 'a branch pipeline: sets ref, ref_type, ref_path, sub and ci_config_ref_uri').conflicts('tag'))
    .option('--tag <tag>', 'a tag pipeline: sets ref, ref_type, ref_path, sub and ci_config_ref_uri')
    .action(async (options: { broker: string; claim: string[]; ref?: string; tag?: string }) => {
      const claims: Record<string, unknown> = {};
      const projectPath = options.claim.find((pair) => pair.startsWith('project_path='))?.slice('project_path='.length);
      if (options.ref !== undefined) Object.assign(claims, refClaims('branch', options.ref, projectPath || undefined));
      if (options.tag !== undefined) Object.assign(claims, refClaims('tag', options.tag, projectPath || undefined));
      for (const pair of options.claim) {
        const at = pair.indexOf('=');
        if (at <= 0) {
          console.error(`--claim wants k=v, got ${pair}`);
          return void (process.exitCode = EXIT.usage);
        }
        const value = pair.slice(at + 1);
        claims[pair.slice(0, at)] = value === '' ? null : value;
      }
      let response: Response;
      try {
        response = await fetch(`${options.broker.replace(/\/$/, '')}${DEV_ISSUER_PATH}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ claims }),
        });
      } catch (err) {
        console.error(`no dev broker at ${options.broker} (start one with: npm start): ${(err as Error).message}`);
        return void (process.exitCode = EXIT.upstream);
      }
      if (!response.ok) {
        console.error(`the broker at ${options.broker} is not in dev mode (HTTP ${response.status})`);
        return void (process.exitCode = EXIT.denied);
      }
      console.log(((await response.json()) as { token: string }).token);
    });
}
