/**
 * Approvals lookup latency against the stand-in GitLab answering every call after a fixed 50 ms (issue [2/8]).
 * A lookup that needs both kinds of approval must take about the longest chain of dependent calls, not their sum:
 *   deployments?environment → deployments/:id → users/:id ∥ groups/:g/members/all/:u      (3 deep)
 *   commits/:sha/merge_requests → merge_requests/:iid/approvals → users ∥ members        (3 deep)
 *   commits/:sha/merge_requests → merge_requests/:iid/commits ∥ /versions                (2 deep)
 * Each iteration uses a new source, so the membership cache never shortens the chain.
 * Run: `node dist/bench/approvals.js` (after `npx tsc -p .`).
 */
import { pathToFileURL } from 'node:url';
import { createGitLabClient } from '../src/adapters/gitlab/client.js';
import type { FactNeeds } from '../src/core/policy/evaluate.js';
import { GROUPS, SCENARIO, fullyApproved, scenarioPrincipal } from '../test/support/approval-scenarios.js';
import { startApprovalsServer } from '../test/support/approvals-server.js';

export interface ApprovalsBenchResult {
  readonly latencyMs: number;
  readonly iterations: number;
  /** Dependent calls on the longest path, times the latency. */
  readonly chainMs: number;
  /** Every call one lookup makes, times the latency: what a sequential client would take. */
  readonly sumMs: number;
  readonly callsPerLookup: number;
  readonly medianMs: number;
  readonly maxMs: number;
  /** median / chain; the target is ≤ 1.3. */
  readonly ratio: number;
}

const LONGEST_CHAIN = 3;

export async function runApprovalsBench(options: { latencyMs?: number; iterations?: number } = {}): Promise<ApprovalsBenchResult> {
  const latencyMs = options.latencyMs ?? 50;
  const iterations = options.iterations ?? 15;
  const server = await startApprovalsServer(fullyApproved());
  server.api.faults.latencyMs = latencyMs;
  const needs: FactNeeds = { jobStatus: false, deploymentApprovals: true, mergeRequestApprovals: true, groups: [GROUPS.release, GROUPS.reviewers] };
  const principal = scenarioPrincipal();
  const durations: number[] = [];
  let callsPerLookup = 0;
  try {
    for (let run = 0; run <= iterations; run += 1) {
      const source = createGitLabClient({ token: async () => SCENARIO.token, requestTimeoutMs: 5_000 });
      const before = server.api.calls.length;
      const started = performance.now();
      const facts = await source.approvals(server.issuer, principal, needs, AbortSignal.timeout(10_000)).finally(() => source.close());
      const elapsed = performance.now() - started;
      if (facts.deployment == null || facts.mergeRequest == null) throw new Error('the bench scenario must find both kinds of approval');
      callsPerLookup = server.api.calls.length - before;
      if (run > 0) durations.push(elapsed); // the first run pays for connection set-up and JIT
    }
  } finally {
    await server.close();
  }
  durations.sort((a, b) => a - b);
  const medianMs = durations[Math.floor(durations.length / 2)] ?? NaN;
  const chainMs = LONGEST_CHAIN * latencyMs;
  return {
    latencyMs, iterations, chainMs, sumMs: callsPerLookup * latencyMs, callsPerLookup,
    medianMs: Math.round(medianMs * 10) / 10, maxMs: Math.round((durations.at(-1) ?? NaN) * 10) / 10,
    ratio: Math.round((medianMs / chainMs) * 100) / 100,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runApprovalsBench();
  console.log(JSON.stringify(result, null, 2));
  console.log(`approvals lookup: median ${result.medianMs} ms for a ${result.chainMs} ms chain (${result.callsPerLookup} calls, ${result.sumMs} ms if sequential): ${result.ratio}× (target ≤ 1.3×)`);
  process.exitCode = result.ratio <= 1.3 ? 0 : 1;
}
