/** `oidc-broker policy check|test|explain`: thin shells over the shared loader and the offline evaluator. */
import { InvalidArgumentError, type Command } from 'commander';
import { loadPolicy } from '../adapters/policy/load.js';
import { systemClock } from '../adapters/clock.js';
import { approvalFactsFrom, claimsFrom, decideOffline, grantsFrom, PolicyCaseError, readPolicyCases, readStructuredFile, runPolicyCases } from '../app/policy-tools.js';
import { isBrokerError } from '../core/errors.js';
import { PolicyError, type CompiledPolicy } from '../core/policy/compile.js';
import { lintPolicy } from '../core/policy/lint.js';
import { reasonsFor } from '../core/policy/evaluate.js';
import { assertReadable, oneOf } from './options.js';
import { EXIT, printTable } from './output.js';

/** GitLab's job statuses (the Jobs API `status`). */
const JOB_STATUSES = ['created', 'waiting_for_resource', 'preparing', 'pending', 'running', 'success', 'failed', 'canceling', 'canceled', 'skipped', 'manual', 'scheduled'] as const;

function parseJsonOption(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw new InvalidArgumentError('expected JSON, e.g. \'{"token":{}}\'.');
  }
}

async function loadOrReport(path: string): Promise<CompiledPolicy | undefined> {
  await assertReadable(path);
  try {
    return await loadPolicy(path);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const issue of err.issues) console.error(`error: ${issue.source}${issue.path ? ` ${issue.path}` : ''}: ${issue.message}`);
    return undefined;
  }
}

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

const printJson = (value: unknown): void => console.log(JSON.stringify(value, null, 2));

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('check, test and explain policy files offline');

  policy
    .command('check')
    .argument('<path>', 'policy file or directory of *.yaml')
    .option('--strict', 'treat warnings as errors')
    .option('--allow-shadowing', 'accept earlier rules that grant the same with weaker requirements (reported, not counted)')
    .description('schema, duplicate names, patterns that are not RE2, path-only bindings, unpinned production rules, unreachable rules, approval bypass by shadowing')
    .action(async (path: string, options: { strict?: boolean; allowShadowing?: boolean }) => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      const findings = lintPolicy(compiled, { allowShadowing: options.allowShadowing === true });
      for (const finding of findings) console.log(`${finding.severity}: rule ${finding.rule}: ${finding.message}`);
      const counted = findings.filter((finding) => finding.severity !== 'accepted');
      const errors = counted.filter((finding) => finding.severity === 'error' || options.strict).length;
      console.log(`${compiled.rules.length} rules, ${counted.length - errors} warnings, ${errors} errors`);
      process.exitCode = errors > 0 ? EXIT.denied : EXIT.ok;
    });

  policy
    .command('test')
    .argument('<path>', 'policy file or directory')
    .requiredOption('--cases <path>', 'a case file or a directory of them ({ cases: [...] })')
    .option('--json', 'print every case result as JSON')
    .description('run table-driven cases: claims + facts → expected rule or denial code')
    .action((path: string, options: { cases: string; json?: boolean }) => reportingInputErrors(async () => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      await assertReadable(options.cases);
      let cases;
      try {
        cases = await readPolicyCases(options.cases, new Set(compiled.rules.map((rule) => rule.name)));
      } catch (err) {
        if (!(err instanceof PolicyCaseError)) throw err;
        for (const line of err.message.split('\n')) console.error(`error: ${line}`);
        return void (process.exitCode = EXIT.denied);
      }
      const results = runPolicyCases(compiled, cases, systemClock.now());
      const failed = results.filter((result) => !result.passed).length;
      const expected = (result: (typeof results)[number]) => (result.testCase.expect.rule !== undefined ? `rule ${result.testCase.expect.rule}` : `code ${result.testCase.expect.code}`);
      if (options.json) {
        printJson({ passed: results.length - failed, failed, cases: results.map((result) => ({
          source: result.testCase.source, name: result.testCase.name, passed: result.passed, expected: expected(result), actual: result.actual, detail: result.detail,
        })) });
      } else {
        printTable(['result', 'case', 'expected', 'actual', 'why'], results.map((result) => [
          result.passed ? 'pass' : 'FAIL', `${result.testCase.source}: ${result.testCase.name}`, expected(result), result.actual, result.passed ? '' : result.detail,
        ]));
        console.log(`${results.length - failed} passed, ${failed} failed`);
      }
      process.exitCode = failed > 0 ? EXIT.denied : EXIT.ok;
    }));

  policy
    .command('explain')
    .argument('<path>', 'policy file or directory')
    .requiredOption('--claims <file>', 'ID token claims (JSON or YAML)')
    .option('--approvals <file>', 'approval facts (JSON or YAML)')
    .option('--job-status <status>', `GitLab job status: ${JOB_STATUSES.join(', ')}`, oneOf(JOB_STATUSES), 'running')
    .option('--grants <json>', 'requested grants as JSON', parseJsonOption, { token: {} })
    .option('--json', 'print the decision and every evaluation as JSON')
    .description('offline decision with every condition')
    .action((path: string, options: { claims: string; approvals?: string; jobStatus: string; grants: unknown; json?: boolean }) => reportingInputErrors(async () => {
      const compiled = await loadOrReport(path);
      if (!compiled) return void (process.exitCode = EXIT.denied);
      await assertReadable(options.claims);
      if (options.approvals) await assertReadable(options.approvals);
      const claims = claimsFrom(await readStructuredFile(options.claims), options.claims);
      const approvals = options.approvals ? approvalFactsFrom(await readStructuredFile(options.approvals), options.approvals) : undefined;
      const outcome = decideOffline(compiled, { claims, approvals, jobStatus: options.jobStatus, grants: grantsFrom(options.grants, '--grants') }, systemClock.now(), { everyRule: true });
      if (!outcome.ok) {
        if (options.json) printJson({ allowed: false, code: outcome.code, detail: outcome.detail, evaluations: [] });
        else console.log(`denied: ${outcome.code}: ${outcome.detail}`);
        return void (process.exitCode = EXIT.denied);
      }
      const { decision } = outcome;
      process.exitCode = decision.allowed ? EXIT.ok : EXIT.denied;
      if (options.json) {
        return printJson(decision.allowed
          ? { allowed: true, rule: decision.rule.name, evaluations: decision.evaluations }
          : { allowed: false, code: decision.code, detail: decision.detail, reasons: decision.reasons, evaluations: decision.evaluations });
      }
      for (const evaluation of decision.evaluations) {
        console.log(`rule ${evaluation.rule}: ${evaluation.applies ? 'applies' : 'does not apply'}`);
        printTable(['', 'condition', 'expected', 'actual'], evaluation.conditions.map((c) => [c.ok ? 'ok' : c.skipped ? '-' : 'x', c.name, c.expected, c.actual ?? '(absent)']));
        for (const g of evaluation.grants) console.log(`  ${g.ok ? 'ok' : 'x'} grant ${g.name}: ${g.detail}`);
        for (const r of evaluation.requirements) console.log(`  ${r.ok ? 'ok' : 'x'} require ${r.name}: ${r.detail}`);
      }
      if (decision.allowed) {
        console.log(`allowed by rule ${decision.rule.name}`);
      } else {
        console.log(`denied: ${decision.code}: ${decision.detail}`);
        printTable(['rule', 'what', 'detail'], reasonsFor(decision.evaluations, new Set(decision.evaluations.map((e) => e.rule))).map((r) => [r.rule, r.name, r.detail]));
      }
    }));
}
