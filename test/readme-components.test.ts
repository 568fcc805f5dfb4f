/** The README's `## Components` section is generated from the component specs and its examples are valid GitLab CI. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import {
  currentComponentsSection,
  readComponentSpecs,
  README_PATH,
  renderComponentsSection,
  usageExample,
  withComponentsSection,
} from '../scripts/write-components-readme.js';

const SCHEMA = fileURLToPath(new URL('../../test/fixtures/schemas/gitlab-ci.schema.json', import.meta.url));

describe('README components section', async () => {
  const components = await readComponentSpecs();

  it('matches the component specs (run `npm run readme:components` after changing a spec)', async () => {
    const readme = await readFile(README_PATH, 'utf8');
    const section = currentComponentsSection(readme);
    assert.ok(section, 'README.md has no "## Components" section');
    assert.equal(section, renderComponentsSection(components));
  });

  it('lists every input of every component', async () => {
    const readme = await readFile(README_PATH, 'utf8');
    for (const component of components) {
      assert.match(readme, new RegExp(`### \`${component.name}\``));
      for (const input of Object.keys(component.inputs)) assert.ok(readme.includes(`| \`${input}\` |`), `${component.name}: ${input} missing`);
    }
  });

  it('notices drift: a changed description changes the rendered section', () => {
    const first = components[0];
    assert.ok(first);
    const [name, spec] = Object.entries(first.inputs)[0] ?? [];
    assert.ok(name && spec);
    const changed = [{ ...first, inputs: { ...first.inputs, [name]: { ...spec, description: 'something else' } } }, ...components.slice(1)];
    assert.notEqual(renderComponentsSection(changed), renderComponentsSection(components));
  });

  it('replaces the section in place and leaves the rest of the README as it was', () => {
    const readme = '# x\n\nintro\n\n## Components\n\nold\n\n## Docs\n\n- a\n';
    assert.equal(withComponentsSection(readme, '## Components\n\nnew\n'), '# x\n\nintro\n\n## Components\n\nnew\n\n## Docs\n\n- a\n');
    assert.equal(withComponentsSection('# x\n\n## Docs\n', '## Components\n\nnew\n'), '# x\n\n## Components\n\nnew\n\n## Docs\n');
  });

  it('gives each component an example that passes every required input, names only declared ones, and is valid GitLab CI', async () => {
    const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
    for (const component of components) {
      const yaml = /```yaml\n([\s\S]*?)```/.exec(usageExample(component))?.[1] ?? '';
      const config = parse(yaml) as { include: Array<{ component: string; inputs?: Record<string, unknown> }> };
      assert.ok(validate(config), `${component.name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
      const include = config.include[0];
      assert.ok(include && include.component.endsWith(`/${component.name}@1.0.0`), yaml);
      const given = Object.keys(include.inputs ?? {});
      for (const input of given) assert.ok(component.inputs[input], `${component.name}: example passes undeclared input ${input}`);
      for (const [input, spec] of Object.entries(component.inputs)) {
        if (spec.default === undefined) assert.ok(given.includes(input), `${component.name}: example misses required input ${input}`);
      }
    }
  });
});
