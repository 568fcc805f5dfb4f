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
import { exchangeResponseSchema, explainResponseSchema, firstIssue, problemSchema, type ExchangeResponse } from '../../core/exchange-response.js';
import { missingFieldText } from '../../core/json-path.js';
import { writeFileAtomic } from '../atomic-file.js';
import { formatExplanation, formatProblem } from '../denials.js';
import { EXIT } from '../output.js';
import { judgeGate } from '../gate-verdict.js';
import { parseGrantList, parseSeconds } from '../options.js';
import { earliestExpiry, refreshLoop, refreshPlanSchema, startRefreshWorker } from './refresh-loop.js';

class UsageError extends Error {}

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

const text = (value: unknown): string => (value === undefined || value === null ? '' : String(value));

/** A JSON body as a record for the denial formatters, which read what they find and print the rest as absent. */
function asRecord(body: unknown): Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

function exitCodeFor(status: number): number {
  return status === 429 || status >= 500 ? EXIT.upstream : EXIT.denied;
}

/** Write each granted kind's files (CONTRACT.md §5) and return the dotenv entries that point at them. */
async function writeCredentials(out: string, reply: ExchangeResponse, material: JobMaterial): Promise<[string, string][]> {
  const env: [string, string][] = [['OIDC_BROKER_DIR', out], ['OIDC_BROKER_RULE', reply.rule], ['OIDC_BROKER_REQUEST_ID', reply.requestId]];
  await mkdir(out, { recursive: true, mode: 0o700 });
  for (const kind of GRANT_KINDS) {
    // Already read through the kind's own response schema (exchangeResponseSchema is built from them).
    const granted = reply.grants[kind];
    if (granted === undefined) continue;
    const output = GRANTS[kind].cli.output(granted, material, out);
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
  readonly grantsJson?: string[];
  readonly tokenEnv: string;
  readonly timeout: number;
}

function readInputs(flags: CommonFlags): { idToken: string; wanted: WantedGrants } {
  if (!isAllowedIssuerUrl(flags.broker)) throw new UsageError('--broker must be an https URL (http only for loopback)');
  const idToken = process.env[flags.tokenEnv]?.trim();
  if (!idToken) throw new UsageError(`$${flags.tokenEnv} is empty: add it under id_tokens: in the job (aud = the broker audience)`);
  return { idToken, wanted: parseGrantFlags([...flags.grant, ...(flags.grantsJson ?? [])]) };
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
  readonly json?: boolean;
  readonly refresh?: boolean;
  readonly refreshBefore: number;
  readonly refreshWorker?: boolean;
}

/** The worker's command line: everything but the ID token, which the worker never needs (it has the session). */
function workerArgs(flags: ExchangeFlags, wanted: WantedGrants, out: string): string[] {
  const grants = [...wanted].flatMap(([kind, argument]) => ['--grant', argument === undefined ? kind : `${kind}=${argument}`]);
  return [
    'exchange', '--broker', flags.broker, '--out', out, ...(flags.dotenv ? ['--dotenv', resolve(flags.dotenv)] : []),
    ...grants, '--timeout', String(flags.timeout), '--refresh-before', String(flags.refreshBefore),
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
    // A denial comes with one table: the explanation's (expected vs what the pipeline had) when the broker gives it,
    // the problem's reasons otherwise.
    const explained = reply.status === 403 ? await callBroker(flags.broker, 'v1/explain', idToken, body, flags.timeout).catch(() => undefined) : undefined;
    const explanation = explained?.status === 200 ? asRecord(explained.body) : undefined;
    if (flags.json) process.stdout.write(`${JSON.stringify({ ok: false, status: reply.status, problem: reply.body, explanation: explanation ?? null })}\n`);
    else process.stderr.write(`${formatProblem(reply.status, asRecord(reply.body), explanation)}\n`);
    return exitCodeFor(reply.status);
  }
  const answer = answerOf(exchangeResponseSchema, reply, 'exchange response');
  const out = resolve(flags.out);
  const env = await writeCredentials(out, answer, material);
  if (flags.dotenv) await writeDotenv(resolve(flags.dotenv), env);
  const granted = Object.keys(answer.grants);
  if (flags.json) {
    // Paths and expiry only: the credentials themselves stay in their files.
    const files = Object.fromEntries(env.filter(([name]) => name.endsWith('_FILE') || name === 'OIDC_BROKER_DIR' || name.endsWith('_EXPIRES_AT')));
    process.stdout.write(`${JSON.stringify({ ok: true, rule: answer.rule, requestId: answer.requestId, granted, out, files })}\n`);
  }
  process.stderr.write(`rule ${answer.rule} granted ${granted.join(', ')}; credentials in ${out}\n`);
  if (flags.refresh) {
    const expiresAt = earliestExpiry(answer.grants);
    if (answer.session === undefined || expiresAt === undefined) throw new UnexpectedAnswer('the broker answered without a session: --refresh needs a broker with POST /v1/refresh');
    const pid = await startRefreshWorker(workerArgs(flags, wanted, out), { session: answer.session, expiresAt: new Date(expiresAt).toISOString() }, out);
    process.stderr.write(`refreshing in the background until ${answer.session.expiresAt} (pid ${pid}; log ${out}/refresh.log)\n`);
  }
  return EXIT.ok;
}

async function gate(flags: CommonFlags & { json?: boolean }): Promise<number> {
  const { idToken, wanted } = readInputs(flags);
  // The explain body is the exchange body; a throwaway CSR keeps it valid without any key leaving the job.
  const body = exchangeBody(wanted, { csrPem: needsKeyPair(wanted) ? generateKeyAndRequest().csrPem : undefined });
  const reply = await callBroker(flags.broker, 'v1/explain?defer=deploymentApprovals', idToken, body, flags.timeout);
  if (reply.status !== 200) {
    if (flags.json) process.stdout.write(`${JSON.stringify({ pass: false, status: reply.status, problem: reply.body })}\n`);
    else process.stderr.write(`${formatProblem(reply.status, asRecord(reply.body))}\n`);
    return exitCodeFor(reply.status);
  }
  answerOf(explainResponseSchema, reply, 'explain response'); // refuses an answer of the wrong shape
  const verdict = judgeGate(asRecord(reply.body));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ ...verdict, explanation: reply.body })}\n`);
  } else if (verdict.pass) {
    process.stdout.write(`allowed by rule ${text(verdict.rule)}\n`);
    for (const item of verdict.deferred) process.stdout.write(`  not judged yet: ${item}\n`);
  } else {
    process.stderr.write(`not allowed:\n${formatExplanation(asRecord(reply.body))}\n`);
  }
  return verdict.pass ? EXIT.ok : EXIT.denied;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function commonOptions(command: Command): Command {
  return command
    .requiredOption('--broker <url>', 'broker base URL', process.env.OIDC_BROKER_URL)
    .option('--grant <grant>', `${grantFlagHelp()}; repeat for several`, collect, [])
    .option('--grants-json <json>', 'the grants as a JSON array, e.g. \'["token","linkerd"]\' (what the CI components pass)', parseGrantList)
    .option('--token-env <name>', 'environment variable holding the GitLab ID token', 'BROKER_ID_TOKEN')
    .addOption(new Option('--timeout <seconds>', 'request timeout').default(30).argParser(parseSeconds));
}

/** Adds `exchange`. */
export function registerExchangeCommand(program: Command): void {
  commonOptions(program.command('exchange').description('exchange the job ID token for credentials and write them to files'))
    .option('--out <dir>', 'directory for the credential files', process.env.OIDC_BROKER_DIR ?? '.oidc-broker')
    .option('--dotenv <file>', 'also write a dotenv file (GOOGLE_OAUTH_ACCESS_TOKEN, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, …)')
    .option('--json', 'print the outcome as JSON on stdout (file paths and expiry, never a credential)')
    .option('--refresh', 'then keep the credential files fresh from a background process until the job ends (POST /v1/refresh)')
    .addOption(new Option('--refresh-before <seconds>', 'with --refresh: renew this long before the credentials expire').default(300).argParser(parseSeconds))
    .addOption(new Option('--refresh-worker').hideHelp())
    .action((flags: ExchangeFlags) => run(() => exchange(flags)));
}

/** Adds `gate`. */
export function registerGateCommand(program: Command): void {
  commonOptions(program.command('gate').description('explain-only check for deploy gating; exit 0 when allowed (deployment approvals are left to the deploy job)'))
    .option('--json', 'print the verdict and the broker\'s explanation as JSON on stdout')
    .action((flags: CommonFlags & { json?: boolean }) => run(() => gate(flags)));
}
