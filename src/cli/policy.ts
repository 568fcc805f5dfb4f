/** `oidc-broker policy check|test|explain`: thin shells over the shared loader and the offline evaluator. */
import type { Command } from 'commander';
import { loadPolicy } from '../adapters/policy/load.js';
import { systemClock } from '../adapters/clock.js';
import { approvalFactsFrom, claimsFrom, decideOffline, readPolicyCases, readStructuredFile, runPolicyCases } from '../app/policy-tools.js';
import { isBrokerError } from '../core/errors.js';
import { PolicyError, type CompiledPolicy } from '../core/policy/compile.js';
import { lintPolicy } from '../core/policy/lint.js';
import { reasonsFor } from '../core/policy/evaluate.js';
import { EXIT, printTable } from './output.js';

/** Run a command body; a wrong input file (invalid_request naming the file and JSON path) is a usage error. */
async function reportingInputErrors(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!isBrokerError(err) || err.code !== 'invalid_request') throw err;
    console.error(`error: ${err.detail}`);
    process.exitCode = EXIT.usage;
  }
}

async function loadOrReport(path: string): Promise<CompiledPolicy | undefined> {
  try {
    return await loadPolicy(path);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const issue of err.issues) console.error(`error: ${issue.source}${issue.path ? ` ${issue.path}` : ''}: ${issue.message}`);
    return undefined;
  }
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('check, test and explain policy files offline');

  policy
    .command('check')
    .argument('<path>', 'policy file or directory of *.yaml')
    .option('--strict', 'treat warnings as errors')
    .description('schema, duplicate names, unsafe patterns, path-only bindings, unpinned production rules, unreachable rules')
    .action(async (path: string, options: { strict?: boolean }) => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      const findings = lintPolicy(compiled);
      for (const finding of findings) console.log(`${finding.severity}: rule ${finding.rule}: ${finding.message}`);
      const errors = findings.filter((finding) => finding.severity === 'error' || options.strict).length;
      console.log(`${compiled.rules.length} rules, ${findings.length - errors} warnings, ${errors} errors`);
      process.exitCode = errors > 0 ? EXIT.denied : EXIT.ok;
    });

  policy
    .command('test')
    .argument('<path>', 'policy file or directory')
    .requiredOption('--cases <dir>', 'directory of case files ({ cases: [...] })')
    .description('run table-driven cases: claims + facts → expected rule or denial code')
    .action((path: string, options: { cases: string }) => reportingInputErrors(async () => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      const results = runPolicyCases(compiled, await readPolicyCases(options.cases), systemClock.now());
      printTable(['result', 'case', 'expected', 'actual'], results.map((result) => [
        result.passed ? 'pass' : 'FAIL',
        `${result.testCase.source}: ${result.testCase.name}`,
        result.testCase.expect.rule !== undefined ? `rule ${result.testCase.expect.rule}` : `code ${result.testCase.expect.code}`,
        result.actual,
      ]));
      const failed = results.filter((result) => !result.passed).length;
      console.log(`${results.length - failed} passed, ${failed} failed`);
      process.exitCode = failed > 0 ? EXIT.denied : EXIT.ok;
    }));

  policy
    .command('explain')
    .argument('<path>', 'policy file or directory')
    .requiredOption('--claims <file>', 'ID token claims (JSON or YAML)')
    .option('--approvals <file>', 'approval facts (JSON or YAML)')
    .option('--job-status <status>', 'GitLab job status', 'running')
    .option('--grants <json>', 'requested grants as JSON', '{"token":{}}')
    .description('offline decision with every condition')
    .action((path: string, options: { claims: string; approvals?: string; jobStatus: string; grants: string }) => reportingInputErrors(async () => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      const claims = claimsFrom(await readStructuredFile(options.claims), options.claims);
      const approvals = options.approvals ? approvalFactsFrom(await readStructuredFile(options.approvals), options.approvals) : undefined;
      const outcome = decideOffline(compiled, { claims, approvals, jobStatus: options.jobStatus, grants: JSON.parse(options.grants) as unknown }, systemClock.now());
      if (!outcome.ok) {
        console.log(`denied: ${outcome.code}: ${outcome.detail}`);
        return void (process.exitCode = EXIT.denied);
      }
      const { decision } = outcome;
      for (const evaluation of decision.evaluations) {
        console.log(`rule ${evaluation.rule}: ${evaluation.applies ? 'applies' : 'does not apply'}`);
        printTable(['', 'condition', 'expected', 'actual'], evaluation.conditions.map((c) => [c.ok ? 'ok' : 'x', c.name, c.expected, c.actual ?? '(absent)']));
        for (const g of evaluation.grants) console.log(`  ${g.ok ? 'ok' : 'x'} grant ${g.name}: ${g.detail}`);
        for (const r of evaluation.requirements) console.log(`  ${r.ok ? 'ok' : 'x'} require ${r.name}: ${r.detail}`);
      }
      if (decision.allowed) {
        console.log(`allowed by rule ${decision.rule.name}`);
        process.exitCode = EXIT.ok;
      } else {
        console.log(`denied: ${decision.code}: ${decision.detail}`);
        printTable(['rule', 'what', 'detail'], reasonsFor(decision.evaluations, new Set(decision.evaluations.map((e) => e.rule))).map((r) => [r.rule, r.name, r.detail]));
        process.exitCode = EXIT.denied;
      }
    }));
}
