/**
 * Renders the CI components (templates/<name>/template.yml) and the classic template (ci-templates/) from one source
 * (`npm run templates`): the job scripts live once, as shell files in ci-src/steps/, and the YAML skeletons in
 * ci-src/ name them with a `- "@step NAME"` list item. Both renderings of a step are the same text, so a classic job
 * runs exactly its component's script. The rendered files are committed (GitLab reads them from the repository); a
 * test fails when they differ from what this produces, and `--check` says which.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GRANT_KINDS, GRANTS } from '../src/core/grants.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SOURCE_DIR = 'ci-src';
export const CLASSIC_TEMPLATE = 'ci-templates/oidc-broker.gitlab-ci.yml';
/** Every step runs after this one: `set -eu` and the `broker` function. */
const PRELUDE = 'cli';
const STEP_MARKER = /^( *)- "@step ([a-z0-9-]+)"$/;
/** Where a skeleton's text names the grant kinds (an input's description): filled from the registry. */
const GRANT_KINDS_MARKER = '@grant-kinds';

/** The kinds a job can ask for, as `--grant` takes them: "google, linkerd, token or token=AUDIENCE". */
export function grantKindsText(): string {
  const withArgument = GRANT_KINDS.flatMap((kind) => {
    const argument = GRANTS[kind].cli.argument;
    return argument === undefined ? [] : [`${kind}=${argument}`];
  });
  return withArgument.length === 0 ? GRANT_KINDS.join(', ') : `${GRANT_KINDS.join(', ')} or ${withArgument.join(' or ')}`;
}

/**
 * A step's lines as they go into a job: whole-line comments dropped (they explain the source, and GitLab would echo
 * them), except shellcheck directives other than `shell=`, which the rendered script needs.
 */
export function stepLines(source: string): string[] {
  return source.split('\n').filter((line) => {
    const trimmed = line.trimStart();
    if (trimmed === '') return false;
    if (!trimmed.startsWith('#')) return true;
    return /^# shellcheck (?!shell=)/.test(trimmed);
  });
}

/** The script of one step: the prelude, then the step, one string. */
export function stepScript(steps: ReadonlyMap<string, string>, name: string): string {
  const prelude = steps.get(PRELUDE);
  const step = steps.get(name);
  if (prelude === undefined) throw new TypeError(`${SOURCE_DIR}/steps/${PRELUDE}.sh is missing`);
  if (step === undefined || name === PRELUDE) throw new TypeError(`unknown step ${name}: add ${SOURCE_DIR}/steps/${name}.sh`);
  return [...stepLines(prelude), ...stepLines(step)].join('\n');
}

/** A skeleton with each `- "@step NAME"` replaced by a literal block holding the step's script. */
export function renderSkeleton(skeleton: string, steps: ReadonlyMap<string, string>, generatedFrom: string): string {
  const lines: string[] = [];
  const grantKinds = grantKindsText();
  let noted = false;
  for (const line of skeleton.split('\n')) {
    // The note goes after the leading comment block: the README takes a component's summary from its first comment.
    if (!noted && !line.startsWith('#')) {
      lines.push(`# Generated from ${generatedFrom} and ${SOURCE_DIR}/steps/ by \`npm run templates\`: edit those, not this file.`);
      noted = true;
    }
    const marker = STEP_MARKER.exec(line);
    if (!marker) {
      lines.push(line.replaceAll(GRANT_KINDS_MARKER, grantKinds));
      continue;
    }
    const indent = marker[1] as string;
    lines.push(`${indent}- |`, ...stepScript(steps, marker[2] as string).split('\n').map((text) => `${indent}  ${text}`));
  }
  return lines.join('\n');
}

async function readSteps(root: string): Promise<Map<string, string>> {
  const dir = join(root, SOURCE_DIR, 'steps');
  const steps = new Map<string, string>();
  for (const file of (await readdir(dir)).filter((name) => name.endsWith('.sh')).sort()) {
    steps.set(file.slice(0, -'.sh'.length), await readFile(join(dir, file), 'utf8'));
  }
  return steps;
}

/** Every rendered file, by its path relative to the repository. */
export async function renderCiTemplates(root: string = ROOT): Promise<Map<string, string>> {
  const steps = await readSteps(root);
  const rendered = new Map<string, string>();
  const components = (await readdir(join(root, SOURCE_DIR, 'components'))).filter((file) => file.endsWith('.yml')).sort();
  for (const file of components) {
    const source = `${SOURCE_DIR}/components/${file}`;
    rendered.set(`templates/${file.slice(0, -'.yml'.length)}/template.yml`, renderSkeleton(await readFile(join(root, source), 'utf8'), steps, source));
  }
  const classic = `${SOURCE_DIR}/classic.yml`;
  rendered.set(CLASSIC_TEMPLATE, renderSkeleton(await readFile(join(root, classic), 'utf8'), steps, classic));
  return rendered;
}

/** The rendered files whose committed copy differs from what the sources give (missing files included). */
export async function staleCiTemplates(root: string = ROOT): Promise<string[]> {
  const stale: string[] = [];
  for (const [path, text] of await renderCiTemplates(root)) {
    if ((await readFile(join(root, path), 'utf8').catch(() => undefined)) !== text) stale.push(path);
  }
  return stale;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const stale = await staleCiTemplates();
    if (stale.length > 0) {
      console.error(`out of date with ${SOURCE_DIR}/ (run npm run templates): ${stale.join(', ')}`);
      process.exitCode = 1;
    }
  } else {
    for (const [path, text] of await renderCiTemplates()) {
      await mkdir(join(ROOT, path, '..'), { recursive: true });
      await writeFile(join(ROOT, path), text);
    }
    console.log(`rendered templates/ and ${CLASSIC_TEMPLATE} from ${SOURCE_DIR}/`);
  }
}
