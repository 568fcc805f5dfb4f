/**
 * The CSR reader against structure-aware mutations of real CSRs (test/support/csr-fuzz.ts): no crash, no parse slower than 1 s, and
 * whatever it accepts @peculiar/x509 reads alike. A fixed seed and a count that runs in seconds here; `npm run fuzz:csr`
 * runs 100,000 with a fresh seed.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { FuzzFinding, fuzzCsrReader, makeSeeds, type Seed } from './support/csr-fuzz.js';

describe('CSR reader fuzzing', () => {
  let seeds: Seed[];
  before(async () => {
    seeds = await makeSeeds();
  });

  it('refuses or accepts 5,000 mutants without a crash, and @peculiar/x509 reads every accepted one alike', () => {
    const summary = fuzzCsrReader(seeds, 5_000, 20_261_126);
    assert.equal(summary.accepted + summary.refused, 5_000);
    // Both verdicts must occur, or the mutations are too weak (all refused) or do nothing (all accepted).
    assert.ok(summary.accepted > 100, `only ${summary.accepted} accepted`);
    assert.ok(summary.refused > 2_500, `only ${summary.refused} refused`);
  });

  it('fails a mutant whose parse takes longer than the per-mutant limit, naming it', () => {
    // A limit of one nanosecond: every parse is over it, so the first mutant must be named.
    assert.throws(() => fuzzCsrReader(seeds, 10, 20_261_126, { parseLimitMs: 1e-6 }), (err: unknown) =>
      err instanceof FuzzFinding && /^seed 20261126, mutant 0 \(from no extensions\): parsing took [\d.]+ ms, over the limit of 0\.000001 ms per mutant\n-----BEGIN CERTIFICATE REQUEST-----/.test(err.message));
  });
});
