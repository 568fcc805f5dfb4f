/**
 * `npm run fuzz:csr [-- COUNT [SEED]]`: the CSR reader fuzzer at full strength (default 100,000 mutants; the test suite
 * runs a smaller count of the same fuzzer). Prints a summary, or the first finding with the mutant as PEM and exits 1.
 */
import { FuzzFinding, fuzzCsrReader, makeSeeds } from '../test/support/csr-fuzz.js';

const count = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
const started = performance.now();
try {
  const summary = fuzzCsrReader(await makeSeeds(), count, seed);
  const seconds = (performance.now() - started) / 1000;
  console.log(`fuzz:csr seed ${seed}: ${summary.mutants} mutants, ${summary.accepted} accepted and read alike by @peculiar/x509, ${summary.refused} refused (invalid_request), ${summary.unchanged} unchanged; ${seconds.toFixed(1)} s`);
} catch (err) {
  if (!(err instanceof FuzzFinding)) throw err;
  console.error(`fuzz:csr seed ${seed}: ${err.message}`);
  process.exitCode = 1;
}
