/**
 * `node dist/bench/policy-eval.js`: CPU per policy evaluation (phase 1, `preEvaluate`) for the benchmark's policy and
 * principal, in this process, no I/O. It isolates the cost of matching conditions (the pattern engine) from the rest
 * of an exchange; run it from two builds to compare them (docs/performance.md).
 */
import { parse } from 'yaml';
import { parsePrincipal } from '../src/core/claims.js';
import { compilePolicy } from '../src/core/policy/compile.js';
import { preEvaluate } from '../src/core/policy/evaluate.js';
import { defaultIdTokenClaims } from '../src/dev/token-factory.js';
import { POLICY } from './policy.js';

const policy = compilePolicy([{ source: 'bench.yaml', data: parse(POLICY) }]);
const claims = defaultIdTokenClaims({ issuer: 'https://gitlab.example.com', audience: 'https://broker.bench.example' });
const principals = [
  parsePrincipal(claims, 'https://broker.bench.example'),
  parsePrincipal({ ...claims, environment: 'review/feature-1' }, 'https://broker.bench.example'),
];
const ROUNDS = Number(process.argv[2] ?? 7);
const PER_ROUND = 200_000;
const samples: number[] = [];
let candidates = 0;
for (let round = 0; round < ROUNDS; round += 1) {
  const started = process.cpuUsage();
  for (let i = 0; i < PER_ROUND; i += 1) candidates += preEvaluate(policy, principals[i & 1] as (typeof principals)[number], { token: {} }).candidates.length;
  const used = process.cpuUsage(started);
  samples.push(((used.user + used.system) * 1000) / PER_ROUND);
}
samples.sort((a, b) => a - b);
console.log(`preEvaluate: median ${(samples[Math.floor(samples.length / 2)] as number).toFixed(0)} ns CPU per evaluation (min ${(samples[0] as number).toFixed(0)}, ${ROUNDS} rounds of ${PER_ROUND}; ${candidates} candidates)`);
