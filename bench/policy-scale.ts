/**
 * `node dist/bench/policy-scale.js [sizes…]` (default 10 1000 10000): policy at scale, in this process, no network.
 * For each size, a many-teams policy (bench/policy.ts) is written as YAML files to a temporary directory, then:
 *   - load: read + parse + validate + compile + index (`loadPolicy`, as the server starts), and `policy check`'s lint;
 *   - evaluation: wall time per request of the whole policy evaluation (preEvaluate, factNeeds, decide), p50 and p99
 *     over callers of every team, with the index and, for the ratio, over every rule in order (`everyRule`);
 *   - `policy check` on the files, as a child process (node start-up included: compare with the 10-rule figure).
 * Load and lint are also given in CPU time, which a loaded machine inflates less than wall time.
 * Bounded: every phase runs a fixed number of evaluations.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadPolicy } from '../src/adapters/policy/load.js';
import { parsePrincipal, type GitLabPrincipal } from '../src/core/claims.js';
import type { CompiledPolicy } from '../src/core/policy/compile.js';
import { decide, factNeeds, preEvaluate, type PreEvaluationOptions } from '../src/core/policy/evaluate.js';
import { lintPolicy } from '../src/core/policy/lint.js';
import { defaultIdTokenClaims, withOverrides } from '../src/dev/token-factory.js';
import { manyTeamsPolicy, teamClaims } from './policy.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ENVIRONMENTS = ['production', 'review/feature-1', 'staging', 'ops/rotate'];
const NOW = new Date();
const FACTS = { jobStatus: 'running', approvals: {} };

function callers(teams: number, count: number): GitLabPrincipal[] {
  const base = defaultIdTokenClaims({ issuer: 'https://gitlab.example.com', audience: 'https://broker.bench.example' });
  return Array.from({ length: count }, (_, i) => {
    const team = (i * 7919) % teams;
    return parsePrincipal(withOverrides(base, teamClaims(team, ENVIRONMENTS[i % ENVIRONMENTS.length] as string)), 'https://broker.bench.example');
  });
}

function evaluate(policy: CompiledPolicy, principal: GitLabPrincipal, options: PreEvaluationOptions): boolean {
  const preliminary = preEvaluate(policy, principal, { token: {} }, options);
  factNeeds(preliminary);
  return decide(preliminary, FACTS, NOW).allowed;
}

/**
 * Wall time and CPU time (this process's, getrusage: what a descheduled moment does not inflate) of each of `samples`
 * evaluations after a warm-up, in µs: p50 and p99 of each.
 */
function latencies(policy: CompiledPolicy, principals: readonly GitLabPrincipal[], samples: number, options: PreEvaluationOptions) {
  for (let i = 0; i < Math.min(samples, 2000); i += 1) evaluate(policy, principals[i % principals.length] as GitLabPrincipal, options);
  const wall = new Float64Array(samples);
  const cpu = new Float64Array(samples);
  let allowed = 0;
  for (let i = 0; i < samples; i += 1) {
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    if (evaluate(policy, principals[i % principals.length] as GitLabPrincipal, options)) allowed += 1;
    wall[i] = Number(process.hrtime.bigint() - started) / 1000;
    const used = process.cpuUsage(cpuBefore);
    cpu[i] = used.user + used.system;
  }
  wall.sort();
  cpu.sort();
  const at = (times: Float64Array, q: number) => times[Math.min(samples - 1, Math.floor(q * samples))] as number;
  return { p50: at(wall, 0.5), p99: at(wall, 0.99), cpuP50: at(cpu, 0.5), cpuP99: at(cpu, 0.99), allowed };
}

/**
 * p50 and p99 in each of `rounds` rounds: on a shared machine a round in which the process is descheduled during more
 * than 1 % of its evaluations shows that in its p99, so every round is reported.
 */
function rounds(policy: CompiledPolicy, principals: readonly GitLabPrincipal[], count: number, samples: number, options: PreEvaluationOptions) {
  return Array.from({ length: count }, () => latencies(policy, principals, samples, options));
}

const µs = (values: readonly number[]) => values.map((value) => value.toFixed(1)).join(', ');

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;
const cpuMs = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
};

async function measure(size: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'policy-scale-'));
  try {
    const { files, teams } = manyTeamsPolicy(size);
    await Promise.all(files.map((text, i) => writeFile(join(dir, `team-group-${String(i).padStart(3, '0')}.yaml`), text)));
    let started = process.hrtime.bigint();
    let cpu = process.cpuUsage();
    const policy = await loadPolicy(dir);
    const load = `${ms(started).toFixed(0)} ms (CPU ${cpuMs(cpu).toFixed(0)} ms)`;
    started = process.hrtime.bigint();
    cpu = process.cpuUsage();
    const findings = lintPolicy(policy);
    const lint = `${ms(started).toFixed(0)} ms (CPU ${cpuMs(cpu).toFixed(0)} ms)`;
    const principals = callers(teams, 1000);
    const indexed = rounds(policy, principals, 5, 20_000, {});
    const linear = rounds(policy, principals, 3, Math.max(100, Math.min(20_000, Math.floor(1_000_000 / size))), { everyRule: true });
    started = process.hrtime.bigint();
    const check = await promisify(execFile)(process.execPath, [CLI, 'policy', 'check', dir], { maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout?: string }) => err);
    const checkMs = ms(started);
    const summary = (check.stdout ?? '').trim().split('\n').at(-1);
    console.log(`${size} rules (${files.length} files, ${teams} teams): load ${load}, lint ${lint} (${findings.length} findings)`);
    console.log(`  policy check (a new process, node start-up included): ${checkMs.toFixed(0)} ms [${summary}]`);
    const linearSamples = Math.max(100, Math.min(20_000, Math.floor(1_000_000 / size)));
    for (const [what, measured] of [['indexed, 5 rounds of 20,000', indexed], [`every rule, 3 rounds of ${linearSamples}`, linear]] as const) {
      console.log(`  ${what}: wall p50 ${µs(measured.map((round) => round.p50))} µs; p99 ${µs(measured.map((round) => round.p99))} µs`);
      console.log(`  ${' '.repeat(what.length)}  CPU p50 ${µs(measured.map((round) => round.cpuP50))} µs; p99 ${µs(measured.map((round) => round.cpuP99))} µs`);
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    console.log(`  p50 every rule / indexed: ${(median(linear.map((round) => round.p50)) / median(indexed.map((round) => round.p50))).toFixed(1)}×; allowed ${indexed[0]?.allowed} of 20,000`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sizes = process.argv.slice(2).map(Number);
for (const size of sizes.length > 0 ? sizes : [10, 1000, 10_000]) await measure(size);
