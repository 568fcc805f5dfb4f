/**
 * One script source (ci-src/steps/) rendered into both the components and the classic template: the committed files
 * are what the generator produces, and every classic job runs exactly the script of its component.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { GRANT_KINDS, GRANTS } from '../src/core/grants.js';
import { CLASSIC_TEMPLATE, grantKindsText, renderCiTemplates, renderSkeleton, stepLines } from '../scripts/write-ci-templates.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT_KEYS = ['before_script', 'script', 'after_script'] as const;

type Job = Partial<Record<(typeof SCRIPT_KEYS)[number], unknown>>;

/** The job's script keys and their lines, e.g. `{ before_script: [...] }`. */
function scriptsOf(job: Job | undefined): Record<string, unknown> {
  return Object.fromEntries(SCRIPT_KEYS.filter((key) => job?.[key] !== undefined).map((key) => [key, job?.[key]]));
}

describe('the CI templates are rendered from one source', async () => {
  const rendered = await renderCiTemplates();

  it('renders a component per ci-src/components file, and the classic template', async () => {
    const components = (await readdir(`${ROOT}templates`)).sort();
    assert.deepEqual([...rendered.keys()].filter((path) => path.startsWith('templates/')).sort(), components.map((name) => `templates/${name}/template.yml`));
    assert.ok(rendered.has(CLASSIC_TEMPLATE));
  });

  for (const [path, text] of rendered) {
    it(`${path} is what the generator produces (run \`npm run templates\` after changing ci-src/)`, async () => {
      assert.equal(await readFile(`${ROOT}${path}`, 'utf8'), text);
    });
  }

  it('each classic job runs the same script as its component', async () => {
    const classic = parse(await readFile(`${ROOT}${CLASSIC_TEMPLATE}`, 'utf8')) as Record<string, Job>;
    const names = (await readdir(`${ROOT}templates`)).sort();
    assert.ok(names.length >= 3);
    for (const name of names) {
      const body = (await readFile(`${ROOT}templates/${name}/template.yml`, 'utf8')).split(/^---\s*$/m)[1] ?? '';
      const jobs = Object.values(parse(body.replace(/\$\[\[[^\]]*\]\]/g, 'x')) as Record<string, Job>);
      assert.equal(jobs.length, 1, `${name} defines one job`);
      const component = scriptsOf(jobs[0]);
      assert.ok(Object.keys(component).length > 0, `${name} has no script`);
      assert.deepEqual(scriptsOf(classic[`.oidc-broker-${name}`]), component, `.oidc-broker-${name} runs another script than the ${name} component`);
    }
  });

  it('replaces a step marker with the prelude and the step, and refuses an unknown step', async () => {
    const steps = new Map([['cli', 'set -eu\n'], ['login', '# why\nbroker exchange\n']]);
    const skeleton = '# a\n.job:\n  script:\n    - "@step login"\n';
    assert.equal(renderSkeleton(skeleton, steps, 'x.yml'), [
      '# a',
      '# Generated from x.yml and ci-src/steps/ by `npm run templates`: edit those, not this file.',
      '.job:', '  script:', '    - |', '      set -eu', '      broker exchange', '',
    ].join('\n'));
    assert.throws(() => renderSkeleton('.job:\n  script:\n    - "@step nope"\n', steps, 'x.yml'), /unknown step nope/);
  });

  it('names the grant kinds from the registry in the components\' grants input', () => {
    const text = grantKindsText();
    for (const kind of GRANT_KINDS) assert.match(text, new RegExp(`(^|, )${kind}(,| or |$)`), kind);
    for (const kind of GRANT_KINDS) {
      const argument = GRANTS[kind].cli.argument;
      if (argument !== undefined) assert.ok(text.includes(`${kind}=${argument}`), `${kind}=${argument}`);
    }
    assert.equal(renderSkeleton('spec:\n  description: Ask for (@grant-kinds).\n', new Map([['cli', '']]), 'x.yml').split('\n')[2], `  description: Ask for (${text}).`);
    for (const name of ['login', 'deploy-gate']) {
      const spec = parse((rendered.get(`templates/${name}/template.yml`) ?? '').split(/^---\s*$/m)[0] ?? '') as { spec: { inputs: { grants: { description: string } } } };
      assert.ok(spec.spec.inputs.grants.description.includes(`(${text})`), `${name}: ${spec.spec.inputs.grants.description}`);
    }
  });

  it('keeps shellcheck directives and drops the other comments of a step', () => {
    assert.deepEqual(stepLines('# shellcheck shell=bash\n# why\n# shellcheck source=/dev/null\n. ./x\n\n  # indented why\necho "#not a comment"\n'), [
      '# shellcheck source=/dev/null', '. ./x', 'echo "#not a comment"',
    ]);
  });
});
