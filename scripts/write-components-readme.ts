/**
 * Writes the README's `## Components` section from the component specs (`npm run readme:components`): per component
 * what it does (the template's leading comment), a usage example, and its inputs table. A test fails when the README
 * and the specs drift.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const README_PATH = join(ROOT, 'README.md');
const HEADING = '## Components';

export interface InputSpec {
  readonly description?: string;
  readonly type?: string;
  readonly default?: unknown;
  readonly options?: readonly unknown[];
  readonly regex?: string;
}

export interface ComponentSpec {
  readonly name: string;
  readonly summary: string;
  readonly inputs: Readonly<Record<string, InputSpec>>;
}

/** Values shown for required inputs in the examples. */
const EXAMPLE_VALUES: Record<string, string> = {
  broker_url: 'https://oidc-broker.example.com',
  audience: 'https://oidc-broker.example.com',
  environment: 'production',
  database: 'projects/my-project/instances/main/databases/payments',
};

/** What a job does with the component, after the include, per component; others get the include alone. */
const USAGE: Record<string, string> = {
  login: [
    'deploy:',
    '  extends: .oidc-broker-login',
    '  environment: production',
    '  script:',
    `    - 'curl --fail -H "Authorization: Bearer $(cat "$BROKER_TOKEN_FILE")" https://deploy-api.internal/releases'`,
  ].join('\n'),
};

export async function readComponentSpecs(root: string = ROOT): Promise<ComponentSpec[]> {
  const specs: ComponentSpec[] = [];
  for (const name of (await readdir(join(root, 'templates'))).sort()) {
    const text = await readFile(join(root, 'templates', name, 'template.yml'), 'utf8');
    // The leading comment block, without the generator's note.
    const leading = text.slice(0, text.search(/^[^#]/m));
    const summary = leading.split('\n').map((line) => line.replace(/^#\s?/, '').trim()).filter((line) => line && !line.startsWith('Generated from ')).join(' ');
    const header = parse(text.split(/^---\s*$/m)[0] ?? '') as { spec?: { inputs?: Record<string, InputSpec> } };
    specs.push({ name, summary, inputs: header.spec?.inputs ?? {} });
  }
  return specs;
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const code = (value: unknown): string => `\`${cell(typeof value === 'string' && value !== '' ? value : JSON.stringify(value))}\``;

function inputType(spec: InputSpec): string {
  const parts = [spec.type ?? 'string'];
  if (spec.options) parts.push(`one of ${spec.options.map(code).join(', ')}`);
  if (spec.regex) parts.push(`matching ${code(spec.regex)}`);
  return parts.join(', ');
}

/** The include (with every required input) and, where there is one, the job that uses it. */
export function usageExample(component: ComponentSpec): string {
  const required = Object.entries(component.inputs).filter(([, spec]) => spec.default === undefined);
  const lines = ['include:', `  - component: $CI_SERVER_FQDN/platform/oidc-broker/${component.name}@1.0.0`];
  if (required.length > 0) {
    lines.push('    inputs:');
    for (const [input] of required) lines.push(`      ${input}: ${EXAMPLE_VALUES[input] ?? `<${input}>`}`);
  }
  const usage = USAGE[component.name];
  return ['```yaml', ...lines, ...(usage ? ['', usage] : []), '```'].join('\n');
}

function inputsTable(component: ComponentSpec): string {
  const rows = Object.entries(component.inputs).map(([input, spec]) =>
    `| \`${input}\` | ${spec.default === undefined ? '**required**' : code(spec.default)} | ${inputType(spec)} | ${cell(spec.description ?? '')} |`);
  return ['| input | default | type | description |', '|---|---|---|---|', ...rows].join('\n');
}

export function renderComponentsSection(components: readonly ComponentSpec[]): string {
  const parts = [
    HEADING,
    '',
    '<!-- Generated from templates/*/template.yml by `npm run readme:components`; a test fails when this section drifts. -->',
    '',
    'Include a component from your GitLab instance at a released version (`platform/oidc-broker` stands for the project',
    'that hosts this repository). Every job requests its ID token as `BROKER_ID_TOKEN` with the `audience` input, calls',
    'the `oidc-broker` CLI, and keeps credentials in files under the job\'s temporary directory. Without components, the',
    'same jobs come as hidden jobs configured by variables in `ci-templates/oidc-broker.gitlab-ci.yml`',
    '(`include: project:` or `include: remote:`).',
  ];
  for (const component of components) {
    parts.push('', `### \`${component.name}\``, '', component.summary, '', usageExample(component), '', inputsTable(component));
  }
  return `${parts.join('\n')}\n`;
}

/** The README with its components section replaced (or inserted before `## Docs`). */
export function withComponentsSection(readme: string, section: string): string {
  const start = readme.indexOf(`\n${HEADING}\n`);
  if (start >= 0) {
    const next = readme.indexOf('\n## ', start + HEADING.length + 2);
    return `${readme.slice(0, start + 1)}${section}${next >= 0 ? readme.slice(next) : ''}`;
  }
  const docs = readme.indexOf('\n## Docs\n');
  if (docs < 0) return `${readme.trimEnd()}\n\n${section}`;
  return `${readme.slice(0, docs + 1)}${section}\n${readme.slice(docs + 1)}`;
}

/** The README's current components section, or undefined. */
export function currentComponentsSection(readme: string): string | undefined {
  const start = readme.indexOf(`\n${HEADING}\n`);
  if (start < 0) return undefined;
  const next = readme.indexOf('\n## ', start + HEADING.length + 2);
  return readme.slice(start + 1, next >= 0 ? next : undefined);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readme = await readFile(README_PATH, 'utf8');
  await writeFile(README_PATH, withComponentsSection(readme, renderComponentsSection(await readComponentSpecs())));
  console.log(`wrote the components section of ${README_PATH}`);
}
