/**
 * docs/cli.md agrees with the real CLI: every command `--help` lists has a section, every flag its `--help` shows is in
 * that section's table, and every documented flag exists. The approval facts and case file examples in the doc are
 * run through `policy explain` and `policy test`, so the documented format is the one the CLI reads.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { codeBlocks, codeSpan, driftReport, headings, readDoc, REPO_ROOT, section, tableRows } from './support/markdown.js';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'dist/src/cli/main.js');

/** The CLI as a user runs it, without the variables that change the defaults `--help` shows. */
function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['OIDC_BROKER_URL', 'OIDC_BROKER_DIR', 'PORT', 'BROKER_CONFIG']) delete env[name];
  return env;
}

async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: cliEnv(), timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

interface Help {
  readonly subcommands: string[];
  readonly flags: string[];
}

/** Subcommand names (`help` left out) and long flags (`--help` left out) of one `--help` text. */
function parseHelp(text: string): Help {
  const block = (title: string) => text.split(/\n(?=\S)/).find((part) => part.startsWith(`${title}:`)) ?? '';
  const subcommands = block('Commands').split('\n').slice(1).flatMap((line) => line.match(/^ {2}([a-z][\w-]*)/)?.[1] ?? []).filter((name) => name !== 'help');
  const flags = block('Options').split('\n').slice(1).flatMap((line) => line.match(/^ {2}(?:-\w, )?(--[\w-]+)/)?.[1] ?? []).filter((flag) => flag !== '--help');
  return { subcommands, flags };
}

async function helpOf(path: readonly string[]): Promise<Help> {
  const result = await cli([...path, '--help']);
  assert.equal(result.code, 0, `oidc-broker ${path.join(' ')} --help failed: ${result.stderr}`);
  return parseHelp(result.stdout);
}

/** Every command reachable through `--help`, from the root, with its flags. */
async function discover(): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  let level: string[][] = [[]];
  while (level.length > 0) {
    const helps = await Promise.all(level.map(helpOf));
    const next: string[][] = [];
    helps.forEach((help, index) => {
      const path = level[index] as string[];
      found.set(['oidc-broker', ...path].join(' '), help.flags);
      for (const sub of help.subcommands) next.push([...path, sub]);
    });
    level = next;
  }
  return found;
}

/** Documented commands (`### \`oidc-broker …\`` headings) and the long flags of each one's table. */
function documentedCommands(doc: string): Map<string, string[]> {
  const commands = new Map<string, string[]>();
  for (const title of headings(doc, 3)) {
    const command = codeSpan(title);
    if (!command?.startsWith('oidc-broker')) continue;
    const flags = tableRows(section(doc, title)).flatMap((cells) => codeSpan(cells[0])?.match(/--[\w-]+/)?.[0] ?? []);
    commands.set(command, flags);
  }
  return commands;
}

const POLICY = `version: 1
rules:
  - name: payments-deploy-production
    when: { project_id: "20", ref_path: refs/heads/main, environment: production }
    require:
      deploymentApprovals: { min: 1, fromGroups: [payments/release] }
      mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers] }
    grant:
      token: { audiences: [https://deploy-api.internal] }
`;

describe('docs/cli.md', () => {
  let doc = '';
  let scratch = '';
  before(async () => {
    doc = await readDoc('docs/cli.md');
    scratch = await mkdtemp(join(tmpdir(), 'docs-cli-'));
  });
  after(() => rm(scratch, { recursive: true, force: true }));

  it('has a section for every command and every flag --help shows, and documents no flag the CLI lacks', async () => {
    const actual = await discover();
    assert.ok(actual.has('oidc-broker policy explain') && actual.get('oidc-broker exchange')?.includes('--dotenv'), 'the --help walk reaches nested commands and their flags');
    const documented = documentedCommands(doc);
    const problems: string[] = [];
    for (const [command, flags] of actual) {
      if (!documented.has(command)) problems.push(`docs/cli.md has no "### \`${command}\`" section`);
      else problems.push(...driftReport('flags', flags, documented.get(command) ?? [], `docs/cli.md (### \`${command}\`)`).filter((line) => line.includes('does not document')));
    }
    for (const [command, flags] of documented) {
      // Also covers documented hidden commands (`dev start`, what `dev` runs), which --help does not list.
      const help = actual.has(command) ? { flags: actual.get(command) ?? [] } : await helpOf(command.split(' ').slice(1));
      const unknown = flags.filter((flag) => !help.flags.includes(flag));
      if (unknown.length > 0) problems.push(`docs/cli.md (### \`${command}\`) documents flags the CLI does not have: ${unknown.join(', ')}`);
    }
    assert.deepEqual(problems, []);
  });

  it('the approval facts example, with the claims example, is allowed by a rule that needs both kinds of approval', async () => {
    const [claims] = codeBlocks(section(doc, 'Claims'), 'yaml');
    const [facts] = codeBlocks(section(doc, 'Approval facts'), 'yaml');
    assert.ok(claims && facts, 'docs/cli.md has a yaml example under ### Claims and ### Approval facts');
    await writeFile(join(scratch, 'policy.yaml'), POLICY);
    await writeFile(join(scratch, 'claims.yaml'), claims);
    await writeFile(join(scratch, 'approvals.yaml'), facts);
    const allowed = await cli(['policy', 'explain', join(scratch, 'policy.yaml'), '--claims', join(scratch, 'claims.yaml'), '--approvals', join(scratch, 'approvals.yaml')]);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /allowed by rule payments-deploy-production/);
    assert.match(allowed.stdout, /require mergeRequestApprovals: merge request !42 needs 2 approvals .*has 2: carol, dave/);

    // The same facts without group memberships: nobody counts, so the example's groups are what made it pass.
    const withoutGroups = parse(facts) as Record<string, unknown>;
    delete withoutGroups.groupMembers;
    await writeFile(join(scratch, 'no-groups.yaml'), stringify(withoutGroups));
    const denied = await cli(['policy', 'explain', join(scratch, 'policy.yaml'), '--claims', join(scratch, 'claims.yaml'), '--approvals', join(scratch, 'no-groups.yaml')]);
    assert.equal(denied.code, 1, denied.stdout);
    assert.match(denied.stdout, /denied: approval_required/);
  });

  it('the case file example passes `policy test`', async () => {
    const [cases] = codeBlocks(section(doc, 'Case files'), 'yaml');
    assert.ok(cases, 'docs/cli.md has a yaml example under ### Case files');
    await writeFile(join(scratch, 'policy.yaml'), POLICY);
    await writeFile(join(scratch, 'cases.yaml'), cases);
    const casesDir = await mkdtemp(join(scratch, 'cases-'));
    await writeFile(join(casesDir, 'cases.yaml'), cases);
    const result = await cli(['policy', 'test', join(scratch, 'policy.yaml'), '--cases', casesDir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /1 passed|pass/i);
  });
});
