/**
 * The job side of the broker (CONTRACT.md §5): `exchange` trades the job's ID token for credentials and writes them
 * to files; `gate` asks /v1/explain whether the pipeline would be allowed. For the linkerd grant the key pair is made
 * here and only the CSR is sent: the private key never leaves the job.
 * Exit codes: 0 ok, 1 denied, 2 usage error, 3 broker or upstream unavailable.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { text as readStream } from 'node:stream/consumers';
import { Option, type Command } from 'commander';
import { generateKeyAndRequest } from '../../adapters/ca/request.js';
import type { z } from 'zod';
import { isAllowedIssuerUrl } from '../../config/schema.js';
import { GRANT_KINDS, GRANTS, isGrantKind, type GrantKind, type JobMaterial } from '../../core/grants.js';
import {
  exchangeResponseSchema, explainResponseSchema, firstIssue, problemSchema, type ExchangeResponse, type ExplainResponse, type Problem,
} from '../../core/exchange-response.js';
import { missingFieldText } from '../../core/json-path.js';
import { writeFileAtomic } from '../atomic-file.js';
import { EXIT, formatTable } from '../output.js';
import { earliestExpiry, refreshLoop, refreshPlanSchema, startRefreshWorker } from './refresh-loop.js';

class UsageError extends Error {}
class MalformedReply extends Error {}

/** The kinds asked for, each with its `--grant kind=VALUE` argument (undefined when none was given). */
export type WantedGrants = ReadonlyMap<GrantKind, string | undefined>;

function grantFlagHelp(): string {
  return GRANT_KINDS.map((kind) => (GRANTS[kind].cli.argument ? `${kind}[=${GRANTS[kind].cli.argument}]` : kind)).join(', ');
}

/** `--grant google --grant linkerd --grant token=https://aud` → what to ask for. */
export function parseGrantFlags(values: readonly string[]): WantedGrants {
  const wanted = new Map<GrantKind, string | undefined>();
  for (const value of values.flatMap((item) => item.split(',')).map((item) => item.trim()).filter(Boolean)) {
    const [kind = '', argument] = value.split(/=(.*)/s);
    if (!isGrantKind(kind) || (argument !== undefined && !GRANTS[kind].cli.argument)) {
      throw new UsageError(`unknown grant ${JSON.stringify(value)}: use ${grantFlagHelp()}`);
    }
    wanted.set(kind, argument);
  }
  if (wanted.size === 0) throw new UsageError('ask for at least one --grant');
  return wanted;
}

function needsKeyPair(wanted: WantedGrants): boolean {
  return [...wanted.keys()].some((kind) => GRANTS[kind].cli.needsKeyPair === true);
}

export function exchangeBody(wanted: WantedGrants, material: JobMaterial): { grants: Record<string, unknown> } {
  const grants: Record<string, unknown> = {};
  for (const [kind, argument] of wanted) grants[kind] = GRANTS[kind].cli.request(argument, material);
  return { grants };
}

interface BrokerReply {
  readonly status: number;
  readonly body: unknown;
}

async function callBroker(broker: string, path: string, idToken: string, body: unknown, timeoutSeconds: number): Promise<BrokerReply> {
  const response = await fetch(new URL(path, broker.endsWith('/') ? broker : `${broker}/`), {
    method: 'POST',
    headers: { authorization: `Bearer ${idToken}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutSeconds * 1000),
    redirect: 'error',
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: response.status, body: undefined };
  }
}

/** A broker answer that is not what the contract says (src/core/exchange-response.ts): nothing is written. */
class UnexpectedAnswer extends Error {}

/** The broker's answer read through the shared schema, or UnexpectedAnswer naming the JSON path. */
function answerOf<T>(schema: z.ZodType<T>, reply: BrokerReply, what: string): T {
  const parsed = schema.safeParse(reply.body, { error: missingFieldText });
  if (!parsed.success) throw new UnexpectedAnswer(`the broker answered ${reply.status} with an unexpected ${what}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** The /v1/explain answer as a table of every failed condition, requirement and grant, per applicable rule. */
export function formatExplanation(explanation: ExplainResponse): string {
  const rows: string[][] = [];
  for (const evaluation of explanation.evaluations) {
    for (const condition of evaluation.conditions.filter((item) => !item.ok)) {
      rows.push([evaluation.rule, condition.name, condition.expected, condition.actual ?? '(absent)']);
    }
    for (const check of [...evaluation.requirements, ...evaluation.grants].filter((item) => !item.ok)) {
      rows.push([evaluation.rule, check.name, 'ok', check.detail]);
    }
  }
  return rows.length === 0 ? 'no rule applies to this project' : formatTable(['RULE', 'CONDITION', 'EXPECTED', 'PIPELINE HAD'], rows);
}

/** A refusal: a problem+json's code, detail and reasons table, or the status alone when the body is not one. */
export function formatProblem(reply: BrokerReply): string {
  const parsed = problemSchema.safeParse(reply.body);
  if (!parsed.success) return `denied: the broker answered ${reply.status} without a problem+json body`;
  const problem: Problem = parsed.data;
  const head = `denied: ${problem.code}: ${problem.detail}`;
  const reasons = (problem.reasons ?? []).map((reason) => [reason.rule, reason.name, reason.detail]);
  return reasons.length === 0 ? head : `${head}\n${formatTable(['RULE', 'CHECK', 'DETAIL'], reasons)}`;
}

function exitCodeFor(status: number): number {
  return status === 429 || status >= 500 ? EXIT.upstream : EXIT.denied;
}

/** Write each granted kind's files (CONTRACT.md §5) and return the dotenv entries that point at them. */
async function writeCredentials(out: string, reply: ExchangeResponse, material: JobMaterial): Promise<[string, string][]> {
  const grants: Readonly<Record<string, unknown>> = reply.grants;
  const env: [string, string][] = [['OIDC_BROKER_DIR', out], ['OIDC_BROKER_RULE', reply.rule], ['OIDC_BROKER_REQUEST_ID', reply.requestId]];
  await mkdir(out, { recursive: true, mode: 0o700 });
  for (const kind of GRANT_KINDS) {
    if (grants[kind] === undefined) continue;
    const parsed = GRANTS[kind].cli.responseSchema.safeParse(grants[kind]);
    if (!parsed.success) throw new MalformedReply(`grants.${kind}.${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const output = GRANTS[kind].cli.output(parsed.data, material, out);
    for (const file of output.files) {
      await mkdir(dirname(file.path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(file.path, file.content, file.mode);
    }
    env.push(...output.env.map(([name, value]): [string, string] => [name, value]));
  }
  // What `spanner migrate` records as the change's authority; no credentials in it.
  await writeFileAtomic(join(out, 'exchange.json'), `${JSON.stringify({ requestId: reply.requestId, rule: reply.rule, subject: reply.subject, approvals: reply.approvals }, null, 2)}\n`, 0o644);
  return env;
}

async function writeDotenv(file: string, entries: readonly [string, string][]): Promise<void> {
  for (const [name, value] of entries) if (/[\r\n]/.test(value)) throw new Error(`${name} would break the dotenv file`);
  await writeFileAtomic(file, entries.map(([name, value]) => `${name}=${value}\n`).join(''), 0o600);
}

interface CommonFlags {
  readonly broker: string;
  readonly grant: string[];
  readonly tokenEnv: string;
  readonly timeout: number;
}

function readInputs(flags: CommonFlags): { idToken: string; wanted: WantedGrants } {
  if (!isAllowedIssuerUrl(flags.broker)) throw new UsageError('--broker must be an https URL (http only for loopback)');
  if (!(flags.timeout > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  const idToken = process.env[flags.tokenEnv]?.trim();
  if (!idToken) throw new UsageError(`$${flags.tokenEnv} is empty: add it under id_tokens: in the job (aud = the broker audience)`);
  return { idToken, wanted: parseGrantFlags(flags.grant) };
}

/** Run a command body, mapping usage errors and network failures to exit codes; never prints a token. */
async function run(body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`usage: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    if (err instanceof MalformedReply) {
      process.stderr.write(`the broker's answer is malformed: ${err.message}\n`);
      process.exitCode = EXIT.upstream;
      return;
    }
    if (err instanceof UnexpectedAnswer) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = EXIT.upstream;
      return;
    }
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    process.stderr.write(`the broker could not be reached: ${cause?.code ?? cause?.message ?? (err as Error).message}\n`);
    process.exitCode = EXIT.upstream;
  }
}

interface ExchangeFlags extends CommonFlags {
  readonly out: string;
  readonly dotenv?: string;
  readonly refresh?: boolean;
  readonly refreshBefore: number;
  readonly refreshWorker?: boolean;
}

/** The worker's command line: everything but the ID token, which the worker never needs (it has the session). */
function workerArgs(flags: ExchangeFlags, out: string): string[] {
  return [
    'exchange', '--broker', flags.broker, '--out', out, ...(flags.dotenv ? ['--dotenv', resolve(flags.dotenv)] : []),
    ...flags.grant.flatMap((grant) => ['--grant', grant]), '--timeout', String(flags.timeout), '--refresh-before', String(flags.refreshBefore),
  ];
}

/** The `--refresh-worker` side: the plan from stdin, then refresh until the session ends or the broker refuses. */
async function refreshWorker(flags: ExchangeFlags): Promise<number> {
  const wanted = parseGrantFlags(flags.grant);
  const parsed = refreshPlanSchema.safeParse(JSON.parse(await readStream(process.stdin)));
  if (!parsed.success) throw new UsageError('--refresh-worker reads the plan that `exchange --refresh` writes to its stdin');
  return refreshLoop({
    plan: parsed.data,
    beforeSeconds: flags.refreshBefore,
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
    async refreshOnce(session) {
      const keyAndRequest = needsKeyPair(wanted) ? generateKeyAndRequest() : undefined;
      const material: JobMaterial = { csrPem: keyAndRequest?.csrPem, privateKeyPem: keyAndRequest?.privateKeyPem };
      const reply = await callBroker(flags.broker, 'v1/refresh', session, exchangeBody(wanted, material), flags.timeout);
      if (reply.status !== 200) {
        const problem = problemSchema.safeParse(reply.body);
        return { status: reply.status, detail: problem.success ? `${problem.data.code}: ${problem.data.detail}` : undefined };
      }
      const answer = answerOf(exchangeResponseSchema, reply, 'refresh response');
      const env = await writeCredentials(resolve(flags.out), answer, material);
      if (flags.dotenv) await writeDotenv(resolve(flags.dotenv), env);
      return { status: 200, expiresAt: earliestExpiry(answer.grants) };
    },
  });
}

async function exchange(flags: ExchangeFlags): Promise<number> {
  if (!(flags.refreshBefore > 0)) throw new UsageError('--refresh-before must be a positive number of seconds');
  if (flags.refreshWorker) return refreshWorker(flags);
  const { idToken, wanted } = readInputs(flags);
  const keyAndRequest = needsKeyPair(wanted) ? generateKeyAndRequest() : undefined;
  const material: JobMaterial = { csrPem: keyAndRequest?.csrPem, privateKeyPem: keyAndRequest?.privateKeyPem };
  const body = exchangeBody(wanted, material);
  const reply = await callBroker(flags.broker, 'v1/exchange', idToken, body, flags.timeout);
  if (reply.status !== 200) {
    process.stderr.write(`${formatProblem(reply)}\n`);
    if (reply.status === 403) {
      const explained = await callBroker(flags.broker, 'v1/explain', idToken, body, flags.timeout).catch(() => undefined);
      const explanation = explained?.status === 200 ? explainResponseSchema.safeParse(explained.body) : undefined;
      if (explanation?.success) process.stderr.write(`${formatExplanation(explanation.data)}\n`);
    }
    return exitCodeFor(reply.status);
  }
  const answer = answerOf(exchangeResponseSchema, reply, 'exchange response');
  const out = resolve(flags.out);
  const env = await writeCredentials(out, answer, material);
  if (flags.dotenv) await writeDotenv(resolve(flags.dotenv), env);
  const granted = Object.keys(answer.grants).join(', ');
  process.stderr.write(`rule ${answer.rule} granted ${granted}; credentials in ${out}\n`);
  if (flags.refresh) {
    const expiresAt = earliestExpiry(answer.grants);
    if (answer.session === undefined || expiresAt === undefined) throw new UnexpectedAnswer('the broker answered without a session: --refresh needs a broker with POST /v1/refresh');
    const pid = await startRefreshWorker(workerArgs(flags, out), { session: answer.session, expiresAt: new Date(expiresAt).toISOString() }, out);
    process.stderr.write(`refreshing in the background until ${answer.session.expiresAt} (pid ${pid}; log ${out}/refresh.log)\n`);
  }
  return EXIT.ok;
}

async function gate(flags: CommonFlags): Promise<number> {
  const { idToken, wanted } = readInputs(flags);
  // The explain body is the exchange body; a throwaway CSR keeps it valid without any key leaving the job.
  const body = exchangeBody(wanted, { csrPem: needsKeyPair(wanted) ? generateKeyAndRequest().csrPem : undefined });
  const reply = await callBroker(flags.broker, 'v1/explain', idToken, body, flags.timeout);
  if (reply.status !== 200) {
    process.stderr.write(`${formatProblem(reply)}\n`);
    return exitCodeFor(reply.status);
  }
  const explanation = answerOf(explainResponseSchema, reply, 'explain response');
  if (explanation.allowed) {
    process.stdout.write(`allowed by rule ${explanation.rule ?? ''}\n`);
    return EXIT.ok;
  }
  process.stderr.write(`not allowed:\n${formatExplanation(explanation)}\n`);
  return EXIT.denied;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function commonOptions(command: Command): Command {
  return command
    .requiredOption('--broker <url>', 'broker base URL', process.env.OIDC_BROKER_URL)
    .option('--grant <grant>', `${grantFlagHelp()}; repeat for several`, collect, [])
    .option('--token-env <name>', 'environment variable holding the GitLab ID token', 'BROKER_ID_TOKEN')
    .addOption(new Option('--timeout <seconds>', 'request timeout').default(30).argParser((value) => Number(value)));
}

/** Adds `exchange`. */
export function registerExchangeCommand(program: Command): void {
  commonOptions(program.command('exchange').description('exchange the job ID token for credentials and write them to files'))
    .option('--out <dir>', 'directory for the credential files', process.env.OIDC_BROKER_DIR ?? '.oidc-broker')
    .option('--dotenv <file>', 'also write a dotenv file (GOOGLE_OAUTH_ACCESS_TOKEN, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, …)')
    .option('--refresh', 'then keep the credential files fresh from a background process until the job ends (POST /v1/refresh)')
    .addOption(new Option('--refresh-before <seconds>', 'with --refresh: renew this long before the credentials expire').default(300).argParser((value) => Number(value)))
    .addOption(new Option('--refresh-worker').hideHelp())
    .action((flags: ExchangeFlags) => run(() => exchange(flags)));
}

/** Adds `gate`. */
export function registerGateCommand(program: Command): void {
  commonOptions(program.command('gate').description('explain-only check for deploy gating; exit 0 when allowed'))
    .action((flags: CommonFlags) => run(() => gate(flags)));
}
