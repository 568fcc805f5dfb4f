/**
 * `npm run bench:google`: what the google grant costs on top of the exchange, in one bounded run (~50 s) on 127.0.0.1,
 * with every stand-in answering after 50 ms (a remote GitLab and a remote Google):
 *
 *   1. latency: an exchange asking for `google` makes two dependent calls, the job lookup then IAM Credentials
 *      generateAccessToken (the broker's own ADC token is fetched once and cached), so its floor is the 100 ms chain.
 *      Target: median ≤ 1.15 × 100 ms, measured one request at a time (no queueing);
 *   2. CPU: broker CPU-seconds per exchange, closed loop, for `{"google":{}}` and for `{"token":{}}` (one call, the job
 *      lookup), after an unmeasured warm-up of each, alternately over five rounds; the median round's ratio. Target: google ≤ 1.3 × token.
 *
 * The broker runs in a child pinned to core 0 (bench/broker-child.ts), built through the composition root with a
 * `google` config section, so the minter is the production one (the direct IAM Credentials client, or with
 * `--client sdk` @google-cloud/iam-credentials over its REST transport) with real ADC (the stand-in's
 * workload-identity-federation file). Generator and stand-ins share core 1.
 *
 * Options: --json FILE (write the figures), --client direct|sdk (config google.client; default direct).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGoogle } from '../test/support/google.js';
import { codesText, fmt, measured, pin, startBroker, type BrokerProcess } from './harness.js';
import { closedLoop, percentile, TokenSupply } from './load.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const UPSTREAM_MS = 50;
const CHAIN_MS = 2 * UPSTREAM_MS;
const TARGET_LATENCY_RATIO = 1.15;
const TARGET_CPU_RATIO = 1.3;
const SERVICE_ACCOUNT = 'spanner-migrator@acme-prod.iam.gserviceaccount.com';
const SEQUENTIAL = 60;
const CONNECTIONS = 32;
const WINDOW = { warmupMs: 1000, measureMs: 3000 };
/** token and google measured alternately, so a change in the machine's load falls on both; the median round counts. */
const CPU_ROUNDS = 5;
/** Before the rounds, each body runs unmeasured this long, so neither path is still being compiled when measured. */
const WARMUP = { warmupMs: 2000, measureMs: 0 };
const TOKENS = 20000;

const POLICY = `version: 1
rules:
  - name: payments-spanner
    when: { project_id: "20", ref_path: refs/heads/main, environment: production }
    require: { jobRunning: true }
    grant:
      google: { serviceAccount: ${SERVICE_ACCOUNT}, scopes: [https://www.googleapis.com/auth/spanner.data], lifetime: 15m }
      token: { audiences: [https://deploy-api.internal], lifetime: 10m }
`;

const argv = process.argv.slice(2);
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
const client: 'direct' | 'sdk' = argv.includes('--client') && argv[argv.indexOf('--client') + 1] === 'sdk' ? 'sdk' : 'direct';

interface Cpu {
  readonly perExchangeMs: number;
  readonly rate: number;
  readonly codes: Record<string, number>;
}

async function cpuPerExchange(broker: BrokerProcess, supply: TokenSupply, body: string): Promise<Cpu> {
  const run = await measured(broker, (mark) => closedLoop(broker.url, supply, { connections: CONNECTIONS, ...WINDOW, mark, body }));
  const ok = run.result.codes.ok ?? 0;
  return { perExchangeMs: (run.serverCpuSeconds / Math.max(1, ok)) * 1000, rate: run.result.completed / run.result.windowSeconds, codes: run.result.codes };
}

async function main(): Promise<void> {
  if (availableParallelism() < 2) throw new Error('the benchmark needs 2 cores (broker on core 0, generator and stand-ins on core 1)');
  console.log(`bench:google: ${cpus()[0]?.model ?? 'cpu'} ×${availableParallelism()}, Node ${process.version}; stand-ins answer after ${UPSTREAM_MS} ms`);
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-bench-google-'));
  const google = await startGoogle();
  google.addServiceAccount(SERVICE_ACCOUNT);
  google.grantTokenCreator(SERVICE_ACCOUNT, google.brokerServiceAccount);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const gitlab = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' }, { jobDelayMs: UPSTREAM_MS });
  const settings = {
    issuer: gitlab.issuer, audience: AUDIENCE, policyPath: join(dir, 'policy.yaml'), auditFile: join(dir, 'audit.log'), apiTokenFile: join(dir, 'gitlab-token'),
    google: { iamCredentialsUrl: google.url, iamUrl: google.url, client },
  };
  await writeFile(settings.policyPath, POLICY);
  await writeFile(settings.apiTokenFile, 'bench-read-api-token\n', { mode: 0o600 });
  const tokens = await mintInParallel(
    { privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: gitlab.issuer, audience: AUDIENCE, count: TOKENS, firstJobId: 1000, overrides: {} },
    2,
  );
  const supply = new TokenSupply(tokens);
  pin(1);
  const broker = await startBroker(settings, undefined, { script: './broker-child.js', env: { GOOGLE_APPLICATION_CREDENTIALS: google.credentialsFile } });
  google.latencyMs = UPSTREAM_MS;
  const googleBody = '{"grants":{"google":{}}}';
  const tokenBody = '{"grants":{"token":{}}}';
  try {
    // Sanity, and the broker's own ADC token fetched once (STS, then impersonation of its service account).
    for (const body of [googleBody, tokenBody]) {
      const response = await fetch(new URL('/v1/exchange', broker.url), { method: 'POST', body, headers: { authorization: `Bearer ${supply.take() ?? ''}`, 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) });
      if (response.status !== 200) throw new Error(`a valid exchange failed: ${response.status} ${(await response.text()).slice(0, 300)}`);
    }
    const stsCalls = google.calls.sts;

    console.log(`(1) latency, one exchange at a time: ${SEQUENTIAL} google exchanges (job lookup ${UPSTREAM_MS} ms, then IAM ${UPSTREAM_MS} ms)`);
    const latencies: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i += 1) {
      const started = performance.now();
      const response = await fetch(new URL('/v1/exchange', broker.url), { method: 'POST', body: googleBody, headers: { authorization: `Bearer ${supply.take() ?? ''}`, 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`exchange ${i} failed: ${response.status}`);
      latencies.push(performance.now() - started);
    }
    const sorted = Float64Array.from(latencies).sort();
    const median = percentile(sorted, 50);
    const latencyRatio = median / CHAIN_MS;
    console.log(`    median ${fmt(median, 1)} ms, p90 ${fmt(percentile(sorted, 90), 1)} ms, max ${fmt(percentile(sorted, 100), 1)} ms; ÷ ${CHAIN_MS} ms chain = ${fmt(latencyRatio, 3)} (target ≤ ${TARGET_LATENCY_RATIO}) ${latencyRatio <= TARGET_LATENCY_RATIO ? 'PASS' : 'FAIL'}`);

    console.log(`(2) broker CPU per exchange, closed loop (${CONNECTIONS} connections, ${WINDOW.measureMs / 1000} s measured, broker pinned to core 0), token and google alternately, ${CPU_ROUNDS} rounds`);
    for (const body of [tokenBody, googleBody]) await closedLoop(broker.url, supply, { connections: CONNECTIONS, ...WARMUP, mark: async () => {}, body });
    const rounds: { tokenCpu: Cpu; googleCpu: Cpu; ratio: number }[] = [];
    for (let round = 1; round <= CPU_ROUNDS; round += 1) {
      const tokenCpu = await cpuPerExchange(broker, supply, tokenBody);
      const googleCpu = await cpuPerExchange(broker, supply, googleBody);
      const ratio = googleCpu.perExchangeMs / tokenCpu.perExchangeMs;
      rounds.push({ tokenCpu, googleCpu, ratio });
      console.log(
        `    round ${round}: token ${fmt(tokenCpu.perExchangeMs, 3)} ms at ${fmt(tokenCpu.rate)}/s (${codesText(tokenCpu.codes)}), google ${fmt(googleCpu.perExchangeMs, 3)} ms at ${fmt(googleCpu.rate)}/s (${codesText(googleCpu.codes)}); google ÷ token ${fmt(ratio, 2)}`,
      );
    }
    const cpuRatio = percentile(Float64Array.from(rounds.map((r) => r.ratio)).sort(), 50);
    console.log(`    google ÷ token, median of ${CPU_ROUNDS} rounds = ${fmt(cpuRatio, 2)} (target ≤ ${TARGET_CPU_RATIO}) ${cpuRatio <= TARGET_CPU_RATIO ? 'PASS' : 'FAIL'}`);
    console.log(`    STS calls during the run: ${google.calls.sts - stsCalls} (the broker's own token is cached)`);
    if (jsonOut) await writeFile(jsonOut, JSON.stringify({ client, median, latencyRatio, rounds, cpuRatio }, null, 2));
  } finally {
    await broker.stop();
    await gitlab.close();
    await google.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// Bounded: whatever happens, the run ends.
const watchdog = setTimeout(() => {
  console.error('bench:google: watchdog (180 s) fired');
  process.exit(1);
}, 180_000);
watchdog.unref();
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
