/**
 * The core unit tests in one process (no per-file child processes): what `npm run test:mutation` runs for each
 * mutant. Exit status is non-zero when a test fails, which is how Stryker's command runner sees a mutant killed.
 */
const CORE_TESTS = ['approvals-rules', 'claims', 'duration', 'echo', 'errors', 'exchange-response-schema', 'grant-modules', 'grant-registry', 'json-path', 'linkerd-core', 'policy-compile', 'policy-decision', 'policy-evaluate', 'policy-lint', 'policy-rule-index', 'policy-shadowing', 'policy-shadowing-parts', 'session', 'spanner-plan', 'strict-json', 'token-checks'];

for (const name of CORE_TESTS) await import(`../test/${name}.test.js`);
