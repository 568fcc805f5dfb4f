/**
 * CI components and classic templates: valid against GitLab's CI schema (header and body as separate documents), every
 * input documented and typed, the CLI flags the scripts use exist in the CLI, and GitLab's component guidance holds
 * (jobs only, no hard-coded host, nothing secret printed, credentials under the job's temporary directory).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parseAllDocuments, parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA = fileURLToPath(new URL('../../test/fixtures/schemas/gitlab-ci.schema.json', import.meta.url));

async function ciValidator() {
  const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as Record<string, unknown>;
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  return ajv.compile(schema);
}

/** GitLab's published CI schema predates `spec: component:` (GitLab 18.6) and rejects it; it is checked on its own below. */
function withoutComponentContext(document: unknown): unknown {
  const spec = (document as { spec?: Record<string, unknown> } | null)?.spec;
  if (!spec || !('component' in spec)) return document;
  const { component: _component, ...rest } = spec;
  return { ...(document as object), spec: rest };
}

/** Values for the required inputs, standing in for a consumer's include. */
const SAMPLE_INPUTS: Record<string, unknown> = {
  broker_url: 'https://oidc-broker.example.com',
  audience: 'https://oidc-broker.example.com',
  database: 'projects/acme/instances/main/databases/payments',
  environment: 'production',
};

/**
 * The body as GitLab loads it: every `$[[ inputs.x ]]` replaced in the text, a string as itself and any other value as
 * JSON (GitLab's text interpolation), then parsed. An array input used as a whole value (`rules: $[[ inputs.rules ]]`)
 * becomes the array, which the schema checks; left uninterpolated it would be a string the schema rightly refuses.
 */
function interpolatedBody(body: string, inputs: Readonly<Record<string, { default?: unknown }>>): unknown {
  const text = body.replaceAll(/\$\[\[\s*inputs\.([a-z_]+)\s*\]\]/g, (_block, name: string) => {
    const value = inputs[name]?.default ?? SAMPLE_INPUTS[name];
    assert.notEqual(value, undefined, `no sample value for the required input ${name}`);
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
  return parse(text) as unknown;
}

describe('CI components (templates/)', async () => {
  const names = (await readdir(`${ROOT}templates`)).sort();
  const validate = await ciValidator();

  for (const name of names) {
    const path = `${ROOT}templates/${name}/template.yml`;
    const text = await readFile(path, 'utf8');
    const documents = parseAllDocuments(text);

    it(`${name}: has a spec header and a body`, () => {
      assert.equal(documents.length, 2);
      for (const document of documents) assert.deepEqual(document.errors, []);
    });

    it(`${name}: header, and body with its inputs interpolated, are valid against GitLab's CI schema`, () => {
      const header = withoutComponentContext(documents[0]?.toJS()) as { spec: { inputs: Record<string, { default?: unknown; regex?: string }> } };
      assert.ok(validate(header), JSON.stringify(validate.errors?.slice(0, 3)));
      for (const [input, value] of Object.entries(SAMPLE_INPUTS)) {
        const regex = header.spec.inputs[input]?.regex;
        if (regex) assert.match(String(value), new RegExp(regex), `the sample ${input} is one the spec accepts`);
      }
      const body = interpolatedBody(text.split(/^---\s*$/m)[1] ?? '', header.spec.inputs);
      assert.ok(validate(body), JSON.stringify(validate.errors?.slice(0, 3)));
    });

    it(`${name}: every input has a description and a type, options or regex; the shared inputs are present`, () => {
      const inputs = (documents[0]?.toJS() as { spec: { inputs: Record<string, Record<string, unknown>> } }).spec.inputs;
      for (const [input, spec] of Object.entries(inputs)) {
        assert.equal(typeof spec.description, 'string', `${input} needs a description`);
        assert.ok(spec.type !== undefined || spec.options !== undefined || spec.regex !== undefined, `${input} needs a type, options or regex`);
        for (const key of Object.keys(spec)) assert.ok(['default', 'description', 'options', 'regex', 'type'].includes(key), `${input}: unknown input attribute ${key}`);
      }
      for (const shared of ['broker_url', 'audience', 'grants', 'image', 'stage', 'as']) assert.ok(inputs[shared], `missing shared input ${shared}`);
      const used = [...text.matchAll(/\$\[\[\s*inputs\.([a-z_]+)\s*\]\]/g)].map((match) => match[1] as string);
      for (const input of used) assert.ok(inputs[input], `uses undeclared input ${input}`);
      for (const input of Object.keys(inputs)) assert.ok(used.includes(input), `declares unused input ${input}`);
    });

    it(`${name}: runs the CLI image at the component's own version, and uses component.version nowhere else`, () => {
      const header = documents[0]?.toJS() as { spec: { component?: unknown; inputs: Record<string, { default?: unknown }> } };
      assert.deepEqual(header.spec.component, ['version']);
      // Not interpolated inside an input's default; null for a SHA or branch; left literal by gitlab-ci-local: image only.
      const uses = text.split('\n').filter((line) => line.includes('component.version') && !line.trimStart().startsWith('#'));
      assert.deepEqual(uses.map((line) => line.trim()), ['image: $[[ inputs.image ]]:$[[ component.version ]]']);
      for (const [input, spec] of Object.entries(header.spec.inputs)) assert.doesNotMatch(String(spec.default ?? ''), /component\./, input);
      assert.match(String(header.spec.inputs.image?.default), /^\$CI_REGISTRY\/[^:@\s]+$/);
    });

    it(`${name}: requests the job ID token as BROKER_ID_TOKEN with the audience input`, () => {
      assert.match(text, /id_tokens:\s*\n\s*BROKER_ID_TOKEN:\s*\n\s*aud: \$\[\[ inputs\.audience \]\]/);
    });
  }
});

describe('classic templates (ci-templates/)', () => {
  it('the spanner-migrate job has the component\'s default rules, and the component applies its rules input', async () => {
    const classic = parse(await readFile(`${ROOT}ci-templates/oidc-broker.gitlab-ci.yml`, 'utf8')) as Record<string, { rules?: unknown }>;
    const [header, body] = parseAllDocuments(await readFile(`${ROOT}templates/spanner-migrate/template.yml`, 'utf8')).map((document) => document.toJS() as Record<string, unknown>);
    const rules = (header as { spec: { inputs: { rules: { type: string; default: unknown } } } }).spec.inputs.rules;
    assert.equal(rules.type, 'array');
    assert.deepEqual(classic['.oidc-broker-spanner-migrate']?.rules, rules.default);
    assert.deepEqual(rules.default, [{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }, { if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH' }]);
    // The whole value (unquoted: quoted, GitLab's text interpolation would make it a string, which the schema test refuses).
    assert.equal((body?.['$[[ inputs.as ]]'] as { rules?: unknown }).rules, '$[[ inputs.rules ]]');
  });

  it('are valid against GitLab\'s CI schema and define the hidden jobs', async () => {
    const validate = await ciValidator();
    const document = parse(await readFile(`${ROOT}ci-templates/oidc-broker.gitlab-ci.yml`, 'utf8')) as Record<string, unknown>;
    assert.ok(validate(document), JSON.stringify(validate.errors?.slice(0, 3)));
    for (const job of ['.oidc-broker-login', '.oidc-broker-deploy-gate', '.oidc-broker-spanner-migrate']) assert.ok(document[job], job);
  });

  it('run the CLI image of the release they are part of (the tag is package.json\'s version)', async () => {
    const document = parse(await readFile(`${ROOT}ci-templates/oidc-broker.gitlab-ci.yml`, 'utf8')) as Record<string, { image?: string }>;
    const { version } = JSON.parse(await readFile(`${ROOT}package.json`, 'utf8')) as { version: string };
    assert.equal(document['.oidc-broker-cli']?.image, `$CI_REGISTRY/platform/oidc-broker:${version}`);
  });
});

describe('every CLI flag the templates\' scripts pass exists in that command', () => {
  const BIN = `${ROOT}dist/src/cli/main.js`;
  const files = ['templates/login/template.yml', 'templates/deploy-gate/template.yml', 'templates/spanner-migrate/template.yml', 'ci-templates/oidc-broker.gitlab-ci.yml'];
  for (const file of files) {
    it(file, async () => {
      // `broker exchange …`, `broker spanner migrate …`: the command, with its subcommand if it has one.
      const calls = [...(await readFile(`${ROOT}${file}`, 'utf8')).matchAll(/^\s*broker (\w+(?: [a-z]+)?) (.*)$/gm)];
      assert.ok(calls.length > 0, 'no oidc-broker call found');
      for (const [, command, rest] of calls) {
        const help = execFileSync(process.execPath, [BIN, ...(command as string).split(' '), '--help'], { encoding: 'utf8' });
        for (const flag of (rest as string).match(/--[a-z][a-z-]*/g) ?? []) assert.match(help, new RegExp(`${flag}\\b`), `${command} has no ${flag}`);
      }
    });
  }
});

describe('what every template must be: job keywords only, no hosts, nothing secret printed, credentials in a temp dir', async () => {
  const GLOBAL_KEYWORDS = ['default', 'include', 'stages', 'variables', 'workflow', 'image', 'services', 'cache', 'before_script', 'after_script'];
  const files = [
    ...(await readdir(`${ROOT}templates`)).sort().map((name) => `templates/${name}/template.yml`),
    'ci-templates/oidc-broker.gitlab-ci.yml',
  ];
  for (const file of files) {
    const text = await readFile(`${ROOT}${file}`, 'utf8');
    const documents = parseAllDocuments(text).map((document) => document.toJS() as Record<string, unknown>);
    const body = documents.at(-1) ?? {};
    const code = text.split('\n').filter((line) => !line.trimStart().startsWith('#'));

    it(`${file}: defines jobs only, no global keyword`, () => {
      for (const key of Object.keys(body)) assert.ok(!GLOBAL_KEYWORDS.includes(key), `global keyword ${key}`);
      for (const [key, value] of Object.entries(body)) assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), `${key} is not a job`);
    });

    it(`${file}: names no host (the GitLab and registry come from CI variables)`, () => {
      for (const line of code) assert.doesNotMatch(line, /[a-z][a-z0-9+.-]*:\/\/|gitlab\.com|\bregistry\.[a-z]/i, line);
      assert.match(text, /\$CI_REGISTRY\//);
    });

    it(`${file}: traces and prints nothing secret`, () => {
      for (const line of code) {
        assert.doesNotMatch(line, /\bset\s+(-[a-wyz]*x|-o\s+xtrace)/, line);
        if (/\b(echo|printf)\b/.test(line)) assert.doesNotMatch(line, /\$\{?[A-Z_]*(TOKEN|SECRET|PASSWORD|KEY)|\$\(cat\b|\benv\b/, line);
      }
    });

    it(`${file}: every exchange writes its credentials to a fresh directory under the job's TMPDIR`, () => {
      const exchanges = code.filter((line) => /^\s*broker exchange /.test(line));
      assert.ok(exchanges.length > 0 || !text.includes('broker exchange'), 'no exchange found');
      for (const line of exchanges) assert.match(line, /--out "\$OIDC_BROKER_DIR" --dotenv "\$OIDC_BROKER_DIR\/broker\.env"/, line);
      const made = code.filter((line) => line.includes('OIDC_BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/oidc-broker.XXXXXX")"')).length;
      assert.equal(made, exchanges.length, 'one mktemp per exchange');
    });
  }
});
