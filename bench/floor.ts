/**
 * `npm run bench:floor`: the broker beside the floor (bench/floor-child.ts: the same I/O as an exchange and nothing
 * else), in alternating rounds against one stand-in, so the machine's slow and fast stretches hit both alike.
 * Reports the median exchanges per CPU-second of each, with and without the job lookup: how much of the broker's cost
 * is Node's HTTP, crypto and file I/O that any implementation on this runtime pays, and how much is the broker's own.
 *
 * `--linkerd`: linkerd exchanges instead of token exchanges (the rule grants a Linkerd identity; both servers issue
 * through the broker's own CA, the floor with nothing else around it). `--rounds N` (default 3). `--no-session`: the floor
 * without the refresh session's signature (the floor as it was before the broker signed one). `--cpu-prof`: a V8
 * CPU profile of every server run, in .bench-out/profiles/floor/<subject>/ (the profiler costs CPU: ratios only).
 */
import { generateKeyPairSync } from 'node:crypto';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, measured, pin, startBroker } from './harness.js';
import { IDENTITY, NAMING, SPIFFE_ID } from './linkerd.js';
import { closedLoop, EXCHANGE_BODY, TokenSupply } from './load.js';
import { paymentsProductionPolicy, POLICY } from './policy.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const argv = process.argv.slice(2);
const LINKERD = argv.includes('--linkerd');
const ROUNDS = argv.includes('--rounds') ? Number(argv[argv.indexOf('--rounds') + 1]) : 3;
const PER_RUN_TOKENS = 14_000;
/** The floor signs a refresh session per exchange, as the broker does; --no-session leaves it out (the earlier floor). */
const FLOOR_SESSION = argv.includes('--no-session') ? '0' : '1';
const PROFILES = argv.includes('--cpu-prof') ? join(process.cwd(), '.bench-out', 'profiles', 'floor') : undefined;

const LINKERD_POLICY = paymentsProductionPolicy('payments-mesh-production', ['linkerd: { serviceAccount: deploy, namespace: ci, lifetime: 10m }']);

/** The linkerd CA in `dir` and the request body naming its identity. */
async function linkerdSetup(dir: string): Promise<{ linkerd: { issuerCertFile: string; issuerKeyFile: string; trustAnchorsFile: string }; body: string }> {
  const material = await generateCaMaterial({ ...NAMING });
  const linkerd = { issuerCertFile: join(dir, 'issuer.crt'), issuerKeyFile: join(dir, 'issuer.key'), trustAnchorsFile: join(dir, 'ca.crt') };
  await writeFile(linkerd.issuerCertFile, material.issuerCertPem);
  await writeFile(linkerd.issuerKeyFile, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(linkerd.trustAnchorsFile, material.trustAnchorsPem);
  const csr = generateKeyAndRequest({ dnsNames: [IDENTITY], uris: [SPIFFE_ID] }).csrPem;
  return { linkerd, body: JSON.stringify({ grants: { linkerd: { csr } } }) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-floor-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  const tokens = await mintInParallel({ privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: standIn.issuer, audience: AUDIENCE, count: PER_RUN_TOKENS, firstJobId: 1000, overrides: {} }, 2);
  const policy = LINKERD ? LINKERD_POLICY : POLICY;
  await writeFile(join(dir, 'job.yaml'), policy);
  await writeFile(join(dir, 'nojob.yaml'), policy.replace('jobRunning: true', 'jobRunning: false'));
  const mesh = LINKERD ? await linkerdSetup(dir) : undefined;
  const body = mesh?.body ?? EXCHANGE_BODY;
  await writeFile(join(dir, 'gitlab-token'), 'bench-read-api-token\n', { mode: 0o600 });
  pin(1);
  const subjects = [
    { name: 'broker, job lookup', policy: 'job.yaml', child: undefined },
    { name: 'floor,  job lookup', policy: 'job.yaml', child: { script: './floor-child.js', env: { FLOOR_JOB: '1', FLOOR_SESSION } } },
    { name: 'broker, no job lookup', policy: 'nojob.yaml', child: undefined },
    { name: 'floor,  no job lookup', policy: 'nojob.yaml', child: { script: './floor-child.js', env: { FLOOR_JOB: '0', FLOOR_SESSION } } },
  ];
  const rates = new Map<string, number[]>(subjects.map((subject) => [subject.name, []]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const subject of round % 2 === 0 ? subjects : [...subjects].reverse()) {
        const settings = { issuer: standIn.issuer, audience: AUDIENCE, policyPath: join(dir, subject.policy), auditFile: join(dir, `audit-${round}.log`), apiTokenFile: join(dir, 'gitlab-token'), linkerd: mesh?.linkerd };
        const profileDir = PROFILES && join(PROFILES, subject.name.replace(/[^a-z]+/g, '-'));
        const server = await startBroker(settings, profileDir, subject.child);
        try {
          // Each server is a fresh process with an empty replay store, so every run can use the same tokens.
          const supply = new TokenSupply(tokens);
          await closedLoop(server.url, supply, { connections: 16, warmupMs: 0, measureMs: 1500, mark: async () => undefined, body });
          const run = await measured(server, (mark) => closedLoop(server.url, supply, { connections: 16, warmupMs: 300, measureMs: 2000, mark, body }));
          if (run.result.codes.ok !== run.result.completed) throw new Error(`${subject.name}: not every exchange succeeded: ${JSON.stringify(run.result.codes)}`);
          rates.get(subject.name)?.push(run.result.completed / run.serverCpuSeconds);
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    await standIn.close();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`bench:floor: ${LINKERD ? 'linkerd' : 'token'} exchanges per CPU-second of the server (median of ${ROUNDS} alternating rounds, closed loop, 16 connections, pinned to core 0)`);
  for (const [name, values] of rates) console.log(`  ${name.padEnd(24)} ${fmt(median(values)).padStart(6)}   (runs: ${values.map((value) => fmt(value)).join(', ')})`);
  const ratio = (broker: string, floor: string) => median(rates.get(broker) ?? []) / median(rates.get(floor) ?? []);
  console.log(`  broker ÷ floor: ${fmt(ratio('broker, job lookup', 'floor,  job lookup'), 2)} with the job lookup, ${fmt(ratio('broker, no job lookup', 'floor,  no job lookup'), 2)} without`);
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
