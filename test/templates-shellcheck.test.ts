/**
 * The scripts the components and classic templates run, as GitLab would render them (every `$[[ inputs.x ]]` replaced by
 * its default, or by a sample value for an input without one), pass `shellcheck -s bash`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT_KEYS = ['before_script', 'script', 'after_script'] as const;

/** Values for inputs that have no default, chosen to satisfy the regexes the templates declare. */
const SAMPLES: Record<string, unknown> = {
  broker_url: 'https://oidc-broker.example.com',
  audience: 'https://oidc-broker.example.com',
  environment: 'production',
  database: 'projects/p/instances/i/databases/d',
};

interface InputSpec {
  readonly default?: unknown;
  readonly type?: string;
}

/** Interpolate the way GitLab does for a whole-value or in-string `$[[ inputs.x ]]`: strings as is, the rest as JSON. */
function renderComponent(text: string): unknown {
  const [header, body] = text.split(/^---\s*$/m);
  const inputs = ((parse(header ?? '') as { spec?: { inputs?: Record<string, InputSpec> } }).spec?.inputs ?? {});
  const rendered = (body ?? '').replace(/\$\[\[\s*(inputs|component)\.([a-z_]+)\s*\]\]/g, (_match, scope: string, name: string) => {
    if (scope === 'component') return name === 'version' ? '1.2.3' : name;
    const spec = inputs[name];
    assert.ok(spec, `undeclared input ${name}`);
    const value = spec.default !== undefined ? spec.default : SAMPLES[name];
    assert.ok(value !== undefined, `no sample value for the required input ${name}: add one to SAMPLES`);
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
  return parse(rendered);
}

/** Every job's script lines (before_script, script, after_script; nested arrays flattened), by job name. */
function jobScripts(config: unknown): Map<string, string> {
  const scripts = new Map<string, string>();
  for (const [name, job] of Object.entries((config ?? {}) as Record<string, unknown>)) {
    if (typeof job !== 'object' || job === null || Array.isArray(job)) continue;
    const lines: string[] = [];
    for (const key of SCRIPT_KEYS) {
      const value = (job as Record<string, unknown>)[key];
      if (value === undefined) continue;
      lines.push(...(Array.isArray(value) ? value.flat(Infinity) : [value]).map(String));
    }
    if (lines.length > 0) scripts.set(name, lines.join('\n'));
  }
  return scripts;
}

async function shellcheck(file: string, severity = 'style'): Promise<{ ok: boolean; output: string }> {
  try {
    await promisify(execFile)('shellcheck', ['-s', 'bash', '-f', 'gcc', '-S', severity, file]);
    return { ok: true, output: '' };
  } catch (err) {
    const failed = err as { stdout?: string; stderr?: string; code?: unknown };
    if (failed.code === 'ENOENT') throw new Error('shellcheck is not installed: run npm test (its pretest installs it) or apt-get install shellcheck');
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'oidc-broker-shellcheck-'));
});
after(() => rm(scratch, { recursive: true, force: true }));

async function assertScriptsPass(source: string, config: unknown, severity?: string): Promise<void> {
  const scripts = jobScripts(config);
  assert.ok(scripts.size > 0, `${source} has no job with a script`);
  for (const [job, script] of scripts) {
    const file = join(scratch, `${source.replaceAll('/', '_')}${job.replaceAll(/[^a-z0-9_-]/gi, '_')}.sh`);
    // The GitLab runner exports the job's variables; shellcheck only needs to know the script is bash.
    await writeFile(file, `#!/usr/bin/env bash\n${script}\n`);
    const result = await shellcheck(file, severity);
    assert.ok(result.ok, `${source} job ${job}: shellcheck found\n${result.output}\nin the rendered script:\n${script}`);
  }
}

describe('the rendered job scripts pass shellcheck', async () => {
  const components = (await readdir(join(ROOT, 'templates'))).sort();
  for (const name of components) {
    it(`component ${name}`, async () => {
      await assertScriptsPass(`templates/${name}`, renderComponent(await readFile(join(ROOT, 'templates', name, 'template.yml'), 'utf8')));
    });
  }
  const classics = (await readdir(join(ROOT, 'ci-templates'))).filter((file) => file.endsWith('.yml')).sort();
  for (const file of classics) {
    it(`classic template ${file}`, async () => {
      await assertScriptsPass(`ci-templates/${file}`, parse(await readFile(join(ROOT, 'ci-templates', file), 'utf8')));
    });
  }

  const steps = (await readdir(join(ROOT, 'ci-src', 'steps'))).filter((file) => file.endsWith('.sh')).sort();
  for (const file of steps) {
    it(`the step source ci-src/steps/${file}`, async () => {
      const result = await shellcheck(join(ROOT, 'ci-src', 'steps', file));
      assert.ok(result.ok, result.output);
    });
  }

  it("this project's own .gitlab-ci.yml", async () => {
    await assertScriptsPass('.gitlab-ci.yml', parse(await readFile(join(ROOT, '.gitlab-ci.yml'), 'utf8')));
  });

  it('a script with a quoting mistake fails the check, and one that cannot parse fails it even at error severity', async () => {
    const quoting = join(scratch, 'quoting.sh');
    await writeFile(quoting, '#!/usr/bin/env bash\nrm -rf $OIDC_BROKER_DIR/*\n');
    const unquoted = await shellcheck(quoting);
    assert.equal(unquoted.ok, false);
    assert.match(unquoted.output, /SC2086/);
    const masked = join(scratch, 'masked.sh');
    await writeFile(masked, '#!/usr/bin/env bash\nexport OIDC_BROKER_DIR="$(mktemp -d)"\n');
    assert.match((await shellcheck(masked)).output, /SC2155/, 'a warning fails the check too');
    const broken = join(scratch, 'broken.sh');
    await writeFile(broken, '#!/usr/bin/env bash\nif [ -n "$OIDC_BROKER_DIR" ]; then echo yes\n');
    const unparsable = await shellcheck(broken, 'error');
    assert.equal(unparsable.ok, false, unparsable.output);
  });
});
