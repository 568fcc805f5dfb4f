/**
 * This project's own `.gitlab-ci.yml`: valid against GitLab's CI schema; it lints, typechecks and tests, builds the CLI
 * image, self-tests every component at this commit, and releases on semver tags with the `release:` keyword.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { readComponentSpecs } from '../scripts/write-components-readme.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA = fileURLToPath(new URL('../../test/fixtures/schemas/gitlab-ci.schema.json', import.meta.url));

interface Job {
  readonly stage?: string;
  readonly before_script?: string[];
  readonly script?: string[];
  readonly extends?: string | string[];
  readonly rules?: Array<{ if?: string }>;
  readonly release?: { tag_name?: string; description?: string };
}

type Config = Record<string, unknown> & { include: Array<{ component: string; inputs?: Record<string, unknown> }>; stages: string[] };

const config = parse(await readFile(`${ROOT}.gitlab-ci.yml`, 'utf8')) as Config;
const job = (name: string): Job => {
  const found = config[name] as Job | undefined;
  assert.ok(found, `.gitlab-ci.yml has no job ${name}`);
  return found;
};
/** GitLab's `=~ /re/` in a rules:if, as a JavaScript RegExp (the patterns used here are RE2 and JS alike). */
const ruleRegex = (condition: string): RegExp => {
  const match = /=~\s*\/(.+)\/$/.exec(condition);
  assert.ok(match?.[1], `no regex in ${condition}`);
  return new RegExp(match[1]);
};

describe("the project's .gitlab-ci.yml", () => {
  it("is valid against GitLab's CI schema", async () => {
    const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
    assert.ok(validate(config), JSON.stringify(validate.errors?.slice(0, 3)));
  });

  it('lints, typechecks and runs the test suite', () => {
    assert.ok(job('lint').script?.includes('npm run lint'));
    assert.ok(job('typecheck').script?.includes('npm run typecheck'));
    assert.ok(job('test').script?.includes('npm test'));
    for (const name of ['lint', 'typecheck', 'test']) assert.ok(config.stages.includes(job(name).stage ?? 'test'), name);
  });

  it('the test job installs, before npm test, every tool the suites take from outside Debian (the Spanner emulator)', async () => {
    // ensure-tools.sh installs Debian's packages itself; the others are listed in its SOURCES with where they come from.
    const ensureTools = await readFile(`${ROOT}scripts/ensure-tools.sh`, 'utf8');
    const sources = /declare -A SOURCES=\(\n([\s\S]*?)\n\)/.exec(ensureTools)?.[1] ?? '';
    const outside = [...sources.matchAll(/^\s*\[([a-z0-9.+-]+)\]=/gm)].map((match) => match[1] as string);
    assert.ok(outside.includes('google-cloud-cli-spanner-emulator'), sources);
    const before = job('test').before_script ?? [];
    for (const pkg of outside) assert.ok(before.some((line) => /apt-get install/.test(line) && line.split(/\s+/).includes(pkg)), `test job does not install ${pkg}`);
    assert.ok(before.some((line) => line.includes('https://packages.cloud.google.com/apt cloud-sdk main')), 'Google Cloud apt repository not added');
    assert.ok(before.includes('npm ci --no-audit --no-fund'), 'its before_script replaces .npm\'s: it must still run npm ci');
  });

  it('builds and pushes the CLI image, tagged with the version on a semver tag', () => {
    const script = (job('cli-image').script ?? []).join('\n');
    assert.match(script, /--dockerfile "\$CI_PROJECT_DIR\/Dockerfile"/);
    assert.match(script, /--destination "\$CI_REGISTRY_IMAGE:\$CI_COMMIT_TAG"/);
  });

  it('self-tests every component, included at this commit with every required input', async () => {
    const components = await readComponentSpecs(ROOT);
    assert.deepEqual(components.map((component) => component.name), (await readdir(`${ROOT}templates`)).sort());
    for (const component of components) {
      const include = config.include.find((entry) => entry.component === `$CI_SERVER_FQDN/$CI_PROJECT_PATH/${component.name}@$CI_COMMIT_SHA`);
      assert.ok(include, `${component.name} is not included at $CI_COMMIT_SHA`);
      for (const [input, spec] of Object.entries(component.inputs)) {
        if (spec.default === undefined) assert.ok(include.inputs?.[input] !== undefined, `${component.name}: required input ${input} missing`);
      }
      for (const input of Object.keys(include.inputs ?? {})) assert.ok(component.inputs[input], `${component.name}: undeclared input ${input}`);
    }
    // spanner-migrate's self-test runs by its rules input (an array of rules), not by rules of the job redefined here.
    const migrate = config.include.find((entry) => entry.component.includes('/spanner-migrate@'));
    assert.ok(Array.isArray(migrate?.inputs?.rules), 'spanner-migrate self-test: rules input');
    assert.equal(job(String(migrate?.inputs?.as)).rules, undefined);
  });

  it('releases on semver tags only, with the release: keyword', () => {
    const release = job('release');
    assert.equal(release.release?.tag_name, '$CI_COMMIT_TAG');
    assert.equal(release.extends, '.on-release-tag');
    const conditions = ((config['.on-release-tag'] as Job).rules ?? []).map((rule) => rule.if ?? '');
    assert.equal(conditions.length, 1);
    const semver = ruleRegex(conditions[0] as string);
    for (const tag of ['1.2.3', '10.0.12', '1.2.3-rc.1']) assert.match(tag, semver);
    for (const tag of ['v1.2.3', '1.2', 'main']) assert.doesNotMatch(tag, semver);
  });
});
