/**
 * `node dist/bench/policy-scale.js [sizes…]` (default 10 1000 10000): policy at scale, in this process, no network.
 * For each size, a many-teams policy (bench/policy.ts) is written as YAML files to a temporary directory, then:
 *   - load: read + parse + validate + compile + index (`loadPolicy`, as the server starts), and `policy check`'s lint;
 *   - evaluation: wall time per request of the whole policy evaluation (preEvaluate, factNeeds, decide), p50 and p99
 *     over callers of every team, with the index and, for the ratio, over every rule in order (`everyRule`);
 *   - `policy check` on the files, as a child process (node start-up included).
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

/** Wall time of each of `samples` evaluations after a warm-up, in µs: p50 and p99. */
function latencies(policy: CompiledPolicy, principals: readonly GitLabPrincipal[], samples: number, options: PreEvaluationOptions) {
  for (let i = 0; i < Math.min(samples, 2000); i += 1) evaluate(policy, principals[i % principals.length] as GitLabPrincipal, options);
  const times = new Float64Array(samples);
  let allowed = 0;
  for (let i = 0; i < samples; i += 1) {
    const started = process.hrtime.bigint();
    if (evaluate(policy, principals[i % principals.length] as GitLabPrincipal, options)) allowed += 1;
    times[i] = Number(process.hrtime.bigint() - started) / 1000;
  }
  times.sort();
  const at = (q: number) => times[Math.min(samples - 1, Math.floor(q * samples))] as number;
  return { p50: at(0.5), p99: at(0.99), allowed };
}

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

async function measure(size: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'policy-scale-'));
  try {
    const { files, teams } = manyTeamsPolicy(size);
    await Promise.all(files.map((text, i) => writeFile(join(dir, `team-group-${String(i).padStart(3, '0')}.yaml`), text)));
    let started = process.hrtime.bigint();
    const policy = await loadPolicy(dir);
    const loadMs = ms(started);
    started = process.hrtime.bigint();
    const findings = lintPolicy(policy);
    const lintMs = ms(started);
    const principals = callers(teams, 1000);
    const indexed = latencies(policy, principals, 50_000, {});
    const linear = latencies(policy, principals, Math.max(200, Math.min(50_000, Math.floor(20_000_000 / size))), { everyRule: true });
    started = process.hrtime.bigint();
    const check = await promisify(execFile)(process.execPath, [CLI, 'policy', 'check', dir], { maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout?: string }) => err);
    const checkMs = ms(started);
    const summary = (check.stdout ?? '').trim().split('\n').at(-1);
    console.log(`${size} rules (${files.length} files, ${teams} teams): load ${loadMs.toFixed(0)} ms, lint ${lintMs.toFixed(0)} ms (${findings.length} findings), policy check ${checkMs.toFixed(0)} ms [${summary}]`);
    console.log(`  indexed:    p50 ${indexed.p50.toFixed(1)} µs, p99 ${indexed.p99.toFixed(1)} µs (${indexed.allowed} allowed)`);
    console.log(`  every rule: p50 ${linear.p50.toFixed(1)} µs, p99 ${linear.p99.toFixed(1)} µs; p50 ratio ${(linear.p50 / indexed.p50).toFixed(1)}×`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sizes = process.argv.slice(2).map(Number);
for (const size of sizes.length > 0 ? sizes : [10, 1000, 10_000]) await measure(size);
