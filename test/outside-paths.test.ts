/**
 * The lint-stage check that keeps the repository standalone (scripts/check-outside-paths.mjs): it passes on this
 * repository and catches planted references to paths outside a repository, without flagging legitimate code.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHECKER = join(ROOT, 'scripts/check-outside-paths.mjs');

// Spelled in pieces so that this file does not itself contain what the checker looks for.
const SIBLING = ['..', 'shared', 'schemas', 'ci.json'].join('/');
const ABSOLUTE = (top: string, rest: string) => ['', top, rest].join('/');
const MODULE_URL = (relative: string) => `new URL('${relative}', import.meta.url)`;

function check(root: string) {
  const run = spawnSync(process.execPath, [CHECKER, root], { encoding: 'utf8' });
  const reported = run.stderr.split('\n').filter((line) => line.startsWith('  ')).map((line) => line.trim().split(': ')[0]);
  return { status: run.status, stderr: run.stderr, reported };
}

async function plantedRepository(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'outside-paths-'));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  execFileSync('git', ['init', '--quiet', root]);
  execFileSync('git', ['-C', root, 'add', '--all']);
  return root;
}

describe('repository check: nothing reads a path outside the repository', () => {
  const scratch: string[] = [];
  after(async () => {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  it('passes on this repository', () => {
    const result = check(ROOT);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
  });

  it('names every planted offender by file and line, and nothing legitimate', async () => {
    const root = await plantedRepository({
      'test/schema.test.ts': [
        "import { readFile } from 'node:fs/promises';",
        `const SCHEMA = ${MODULE_URL(`../../${SIBLING}`)};`,
        `const CRDS = '${ABSOLUTE('work', 'shared/schemas/linkerd-crds')}';`,
        `const ROOT = ${MODULE_URL('../../')};`,
        "const scratch = join(tmpdir(), 'x');",
        '',
      ].join('\n'),
      'src/config.ts': [
        `export const DEFAULT = "${ABSOLUTE('home', 'alice/broker.yaml')}";`,
        "export const DOCS = 'https://example.com/work/tmp/home';",
        `// a comment that mentions ${ABSOLUTE('tmp', 'x')} reads nothing`,
        `export const OUTSIDE = ${MODULE_URL('../../../../elsewhere/policy')};`,
        '',
      ].join('\n'),
      'src/cli/serve.ts': `export const EXAMPLES = ${MODULE_URL('../../../examples/policy')};\n`,
      '.ci/run': `#!/usr/bin/env bash\ncd "$(dirname "$0")/.."\ncp ${ABSOLUTE('root', '.npmrc')} .\nnpm test\n`,
      'scripts/tool.mjs': `const url = 'file://${ABSOLUTE('tmp', 'cache.json')}';\nconst ok = os.tmpdir();\n`,
      'docs/setup.md': `Reference material once lived in ${SIBLING} and ${ABSOLUTE('work', 'shared')}.\n`,
      'test/fixtures/vendored.yaml': `path: ${ABSOLUTE('tmp', 'upstream')}\n`,
    });
    scratch.push(root);
    const result = check(root);
    assert.equal(result.status, 1, result.stderr);
    assert.deepEqual(result.reported.sort(), [
      '.ci/run:3',
      'scripts/tool.mjs:1',
      'src/config.ts:1',
      'src/config.ts:4',
      'test/schema.test.ts:2',
      'test/schema.test.ts:2',
      'test/schema.test.ts:3',
    ], result.stderr);
  });

  it('checks only tracked files', async () => {
    const root = await plantedRepository({ 'src/clean.ts': 'export const x = 1;\n' });
    scratch.push(root);
    await writeFile(join(root, 'src/untracked.ts'), `export const y = '${ABSOLUTE('tmp', 'y')}';\n`);
    assert.equal(check(root).status, 0);
    execFileSync('git', ['-C', root, 'add', 'src/untracked.ts']);
    assert.deepEqual(check(root).reported, ['src/untracked.ts:1']);
  });
});
