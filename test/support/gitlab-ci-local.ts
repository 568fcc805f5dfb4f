/**
 * Runs real consumer pipelines with gitlab-ci-local (shell executor) against this project's templates, offline:
 * - the templates are committed to a bare repository, tagged, and reached through git `url.<..>.insteadOf`, so
 *   `include: component` / `include: project` clone them exactly as gitlab-ci-local clones from a GitLab;
 * - HOME and the git config are a temporary directory's, never the user's;
 * - gitlab-ci-local validates `id_tokens` but never mints them, so the test passes the ID token (signed by the stand-in
 *   GitLab) as a variable through a relative `--variables-file`, optionally one value per environment;
 * - `oidc-broker` on the jobs' PATH is a shim running this checkout's built CLI, which is what the components call.
 * gitlab-ci-local runs as an asynchronous child process, so the stand-ins served by the test process keep answering.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const GITLAB_CI_LOCAL = join(dirname(createRequire(import.meta.url).resolve('gitlab-ci-local/package.json')), 'dist/index.js');

/** The GitLab the consumer project lives on, as its `origin` remote says; never contacted. */
export const GITLAB_HOST = 'gitlab.example.com';
/** Where the templates are published, as `include: component` / `project:` name it. */
export const TEMPLATES_PROJECT = 'platform/oidc-broker';
export const CONSUMER_PROJECT = 'payments/api';

/** A variable value, or one value per environment name (gitlab-ci-local's `values:` form; `*` matches any). */
export type VariableValue = string | { readonly values: Readonly<Record<string, string>> };

export interface JobResult {
  readonly status: 'PASS' | 'FAIL' | 'WARN';
  readonly log: string;
}

export interface PipelineRun {
  readonly exitCode: number;
  /** gitlab-ci-local's own stdout and stderr, with every job's lines prefixed by its name. */
  readonly output: string;
  readonly jobs: ReadonlyMap<string, JobResult>;
  /** The job's log, or a failed assertion naming the jobs that did run. */
  job(name: string): JobResult;
}

export interface PipelineOptions {
  /** The consumer's `.gitlab-ci.yml`. */
  readonly ciYaml: string;
  readonly variables?: Readonly<Record<string, VariableValue>>;
  /** Further files of the consumer project, by relative path. */
  readonly files?: Readonly<Record<string, string>>;
  /** The consumer's project path on GITLAB_HOST (default CONSUMER_PROJECT). */
  readonly project?: string;
  /** Also commit this checkout's templates/ and ci-templates/ into the project (a component project testing itself). */
  readonly withTemplates?: boolean;
  /** More gitlab-ci-local arguments, e.g. `--preview`. */
  readonly extraArgs?: readonly string[];
  readonly timeoutMs?: number;
}

export interface CiWorkspace {
  readonly dir: string;
  /** Commit this checkout's templates/ and ci-templates/ to the templates project and tag the commit. */
  publishTemplates(tag: string): Promise<void>;
  /** Create a fresh consumer project (a git repository whose origin is on GITLAB_HOST) and run its pipeline. */
  runPipeline(options: PipelineOptions): Promise<PipelineRun>;
  close(): Promise<void>;
}

interface Exited {
  readonly code: number;
  readonly output: string;
}

function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const output = Buffer.concat(chunks).toString('utf8');
      resolve({ code: code ?? (signal ? 128 : 1), output: signal ? `${output}\n[killed by ${signal}]` : output });
    });
  });
}

async function git(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  const result = await run('git', args, { cwd, env });
  if (result.code !== 0) throw new Error(`git ${args.join(' ')} failed in ${cwd}:\n${result.output}`);
  return result.output;
}

/** The environment of every git and gitlab-ci-local process: a temporary HOME and git config, the CLI shim first on PATH. */
function isolatedEnv(home: string, bin: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    // Our own runner's and git's settings must not leak into the pipelines.
    if (name.startsWith('GIT_') || name.startsWith('NODE_TEST') || name.startsWith('OIDC_BROKER') || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  return {
    ...env,
    HOME: home,
    GIT_CONFIG_GLOBAL: join(home, '.gitconfig'),
    GIT_CONFIG_NOSYSTEM: '1',
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    FORCE_COLOR: '0',
  };
}

/** `PASS  name` / `FAIL  name` lines of gitlab-ci-local's closing summary. */
function summaryStatuses(output: string): Map<string, JobResult['status']> {
  const statuses = new Map<string, JobResult['status']>();
  for (const match of output.matchAll(/^ (PASS|FAIL|WARN) {2}(\S[^\n]*?)\s*$/gm)) statuses.set(match[2] as string, match[1] as JobResult['status']);
  return statuses;
}

async function copyTemplates(into: string): Promise<void> {
  await cp(join(ROOT, 'templates'), join(into, 'templates'), { recursive: true });
  await cp(join(ROOT, 'ci-templates'), join(into, 'ci-templates'), { recursive: true });
}

/** gitlab-ci-local 4.73's failure when two parallel include fetches of one project@ref copy into its cache at once. */
const INCLUDE_FETCH_RACE = /include could not be fetched[\s\S]*cp: cannot create directory[^\n]*File exists/;

const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

/** Set up a workspace: a temporary HOME whose git config redirects https://GITLAB_HOST to local bare repositories. */
export async function createCiWorkspace(): Promise<CiWorkspace> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-pipelines-'));
  const home = join(dir, 'home');
  const bin = join(dir, 'bin');
  const repos = join(dir, 'repos');
  const templatesRepo = join(repos, `${TEMPLATES_PROJECT}.git`);
  await mkdir(home);
  await mkdir(bin);
  await mkdir(dirname(templatesRepo), { recursive: true });
  // gitlab-ci-local clones https://HOST:443/<project>.git. Only that form is redirected: the consumer's origin
  // (https://HOST/<project>.git) must stay as it is, since gitlab-ci-local reads the GitLab host and project from it.
  await writeFile(join(home, '.gitconfig'), [
    '[user]', '\tname = Pipeline Test', '\temail = pipeline-test@example.com',
    '[init]', '\tdefaultBranch = main',
    '[advice]', '\tdetachedHead = false',
    `[url "file://${repos}/"]`, `\tinsteadOf = https://${GITLAB_HOST}:443/`,
    '[uploadpack]', '\tallowFilter = true',
    '',
  ].join('\n'));
  await writeFile(join(bin, 'oidc-broker'), `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(CLI)} "$@"\n`, { mode: 0o755 });
  const env = isolatedEnv(home, bin);
  await git(dir, env, 'init', '--quiet', '--bare', templatesRepo);
  let consumers = 0;

  return {
    dir,
    async publishTemplates(tag) {
      const work = await mkdtemp(join(dir, 'publish-'));
      await git(work, env, 'init', '--quiet');
      await copyTemplates(work);
      await git(work, env, 'add', '--all');
      await git(work, env, 'commit', '--quiet', '--message', `templates ${tag}`);
      await git(work, env, 'tag', tag);
      await git(work, env, 'push', '--quiet', templatesRepo, 'HEAD:refs/heads/main', `refs/tags/${tag}`);
      await rm(work, { recursive: true, force: true });
    },
    async runPipeline(options) {
      consumers += 1;
      const project = join(dir, `consumer-${consumers}`);
      await mkdir(project);
      await git(project, env, 'init', '--quiet');
      await git(project, env, 'remote', 'add', 'origin', `https://${GITLAB_HOST}/${options.project ?? CONSUMER_PROJECT}.git`);
      await git(project, env, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
      await writeFile(join(project, '.gitlab-ci.yml'), options.ciYaml);
      if (options.withTemplates) await copyTemplates(project);
      for (const [path, content] of Object.entries(options.files ?? {})) {
        await mkdir(dirname(join(project, path)), { recursive: true });
        await writeFile(join(project, path), content);
      }
      await git(project, env, 'add', '--all');
      await git(project, env, 'commit', '--quiet', '--message', 'consumer pipeline');
      // Relative on purpose: gitlab-ci-local silently ignores an absolute --variables-file.
      const variablesFile = '.pipeline-test-variables.yml';
      await writeFile(join(project, variablesFile), stringify(options.variables ?? {}), { mode: 0o600 });
      const args = [
        GITLAB_CI_LOCAL, '--file', '.gitlab-ci.yml', '--variables-file', variablesFile, '--home', home,
        '--shell-executor-no-image', '--force-shell-executor', '--no-color', '--max-job-name-padding', '0', ...(options.extraArgs ?? []),
      ];
      let exited = await run(process.execPath, args, { cwd: project, env, timeoutMs: options.timeoutMs ?? 45_000 });
      if (INCLUDE_FETCH_RACE.test(exited.output)) {
        // gitlab-ci-local fetches the includes of one project@ref in parallel and copies each clone into one cache
        // directory; two copies at once can fail with "File exists" before any job starts. Its race, not ours: clear
        // its include cache and run the pipeline once more (nothing ran, so no token was spent).
        await rm(join(project, '.gitlab-ci-local', 'includes'), { recursive: true, force: true });
        exited = await run(process.execPath, args, { cwd: project, env, timeoutMs: options.timeoutMs ?? 45_000 });
      }
      const jobs = new Map<string, JobResult>();
      for (const [name, status] of summaryStatuses(exited.output)) {
        const log = await readFile(join(project, '.gitlab-ci-local', 'output', `${name}.log`), 'utf8').catch(() => '');
        jobs.set(name, { status, log });
      }
      return {
        exitCode: exited.code,
        output: exited.output,
        jobs,
        job(name) {
          const job = jobs.get(name);
          if (!job) throw new Error(`job ${name} did not run (ran: ${[...jobs.keys()].join(', ') || 'none'}); gitlab-ci-local said:\n${exited.output}`);
          return job;
        },
      };
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
