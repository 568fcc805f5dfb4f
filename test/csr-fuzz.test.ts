/**
 * The CSR reader against structure-aware mutations of real CSRs (test/support/csr-fuzz.ts): no crash, no hang, and
 * whatever it accepts @peculiar/x509 reads alike. A fixed seed and a count that runs in seconds here; `npm run fuzz:csr`
 * runs 100,000 with a fresh seed.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { fuzzCsrReader, makeSeeds, type Seed } from './support/csr-fuzz.js';

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
});
