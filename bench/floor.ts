/**
 * `npm run bench:floor`: the broker beside the floor (bench/floor-child.ts: the same I/O as an exchange and nothing
 * else), in alternating rounds against one stand-in, so the machine's slow and fast stretches hit both alike.
 * Reports the median exchanges per CPU-second of each, with and without the job lookup: how much of the broker's cost
 * is Node's HTTP, crypto and file I/O that any implementation on this runtime pays, and how much is the broker's own.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, measured, pin, startBroker } from './harness.js';
import { closedLoop, TokenSupply } from './load.js';
import { POLICY } from './policy.js';
import { startStandIn } from './standin.js';
import { mintInParallel } from './tokens.js';

const AUDIENCE = 'https://broker.bench.example';
const ROUNDS = 3;
const PER_RUN_TOKENS = 14_000;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-floor-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  const tokens = await mintInParallel({ privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, kid, issuer: standIn.issuer, audience: AUDIENCE, count: PER_RUN_TOKENS, firstJobId: 1000, overrides: {} }, 2);
  await writeFile(join(dir, 'job.yaml'), POLICY);
  await writeFile(join(dir, 'nojob.yaml'), POLICY.replace('jobRunning: true', 'jobRunning: false'));
  await writeFile(join(dir, 'gitlab-token'), 'bench-read-api-token\n', { mode: 0o600 });
  pin(1);
  const subjects = [
    { name: 'broker, job lookup', policy: 'job.yaml', child: undefined },
    { name: 'floor,  job lookup', policy: 'job.yaml', child: { script: './floor-child.js', env: { FLOOR_JOB: '1' } } },
    { name: 'broker, no job lookup', policy: 'nojob.yaml', child: undefined },
    { name: 'floor,  no job lookup', policy: 'nojob.yaml', child: { script: './floor-child.js', env: { FLOOR_JOB: '0' } } },
  ];
  const rates = new Map<string, number[]>(subjects.map((subject) => [subject.name, []]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const subject of round % 2 === 0 ? subjects : [...subjects].reverse()) {
        const settings = { issuer: standIn.issuer, audience: AUDIENCE, policyPath: join(dir, subject.policy), auditFile: join(dir, `audit-${round}.log`), apiTokenFile: join(dir, 'gitlab-token') };
        const server = await startBroker(settings, undefined, subject.child);
        try {
          // Each server is a fresh process with an empty replay store, so every run can use the same tokens.
          const supply = new TokenSupply(tokens);
          await closedLoop(server.url, supply, { connections: 16, warmupMs: 0, measureMs: 1500, mark: async () => undefined });
          const run = await measured(server, (mark) => closedLoop(server.url, supply, { connections: 16, warmupMs: 300, measureMs: 2000, mark }));
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
  console.log(`bench:floor: exchanges per CPU-second of the server (median of ${ROUNDS} alternating rounds, closed loop, 16 connections, pinned to core 0)`);
  for (const [name, values] of rates) console.log(`  ${name.padEnd(24)} ${fmt(median(values)).padStart(6)}   (runs: ${values.map((value) => fmt(value)).join(', ')})`);
  const ratio = (broker: string, floor: string) => median(rates.get(broker) ?? []) / median(rates.get(floor) ?? []);
  console.log(`  broker ÷ floor: ${fmt(ratio('broker, job lookup', 'floor,  job lookup'), 2)} with the job lookup, ${fmt(ratio('broker, no job lookup', 'floor,  no job lookup'), 2)} without`);
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
