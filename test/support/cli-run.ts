/**
 * The CLI as the suites run it: `runCli` (the real entry as a child process, for what a user sees: output and exit
 * code), `spawnCli` (a long-running command such as `serve` or `dev`, read while it runs) and `runCliInProcess` (the
 * exchange and gate commands in this process, a few times faster than a child for suites that run them often).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerExchangeCommand, registerGateCommand } from '../../src/cli/commands/exchange.js';

export const CLI_BIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface CliRun { code: number; stdout: string; stderr: string }

export interface CliOptions {
  /** An installed `oidc-broker` executable to run instead of this checkout's compiled entry. */
  bin?: string;
  /** The working directory (default: the repository root, where `examples/` resolves). */
  cwd?: string;
  timeoutMs?: number;
}

function command(args: string[], options: CliOptions): [string, string[]] {
  return options.bin ? [options.bin, args] : [process.execPath, [CLI_BIN, ...args]];
}

/** Runs one command to its end; a failed run resolves too, with its exit code (-1 when it did not exit by itself). */
export function runCli(args: string[], env: Record<string, string> = {}, options: CliOptions = {}): Promise<CliRun> {
  const [file, argv] = command(args, options);
  return new Promise((resolve) => {
    execFile(file, argv, { cwd: options.cwd ?? REPO_ROOT, env: { ...process.env, ...env }, timeout: options.timeoutMs ?? 30_000 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

/** A command that keeps running; what it wrote so far is readable at any time. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code (null when a signal ended it), once all its output has been read. */
  readonly exited: Promise<number | null>;
  /**
   * Resolves once `text` appears on stdout or stderr, when the process exits, or after `timeoutMs`, whichever comes
   * first: the caller then asserts on the output, so a failure shows what the process did print.
   */
  printed(text: string, timeoutMs?: number): Promise<void>;
  /** SIGTERM. */
  stop(): void;
}

export function spawnCli(args: string[], options: CliOptions = {}): CliProcess {
  const [file, argv] = command(args, options);
  const child = spawn(file, argv, { cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  const capture = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    output[stream] += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout.on('data', capture('stdout'));
  child.stderr.on('data', capture('stderr'));
  // 'close', not 'exit': by then all the output has been read.
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return {
    child,
    get stdout() { return output.stdout; },
    get stderr() { return output.stderr; },
    exited,
    printed: async (text, timeoutMs = 60_000) => {
      let check = () => undefined as void;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          check = () => { if (output.stdout.includes(text) || output.stderr.includes(text)) resolve(); };
          listeners.add(check);
          check();
        }),
      ]);
      clearTimeout(timer);
      listeners.delete(check);
    },
    stop: () => { child.kill('SIGTERM'); },
  };
}

/** The exchange and gate commands in this process; `token` is BROKER_ID_TOKEN (undefined: unset). */
export async function runCliInProcess(args: string[], token: string | undefined): Promise<{ code: number; stderr: string }> {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
    typeof chunk === 'string' ? written.push(chunk) > 0 : write(chunk, ...rest)) as typeof process.stderr.write;
  const saved = process.env.BROKER_ID_TOKEN;
  if (token === undefined) delete process.env.BROKER_ID_TOKEN;
  else process.env.BROKER_ID_TOKEN = token;
  try {
    const program = new Command().exitOverride();
    registerExchangeCommand(program);
    registerGateCommand(program);
    await program.parseAsync(args, { from: 'user' });
    return { code: Number(process.exitCode ?? 0), stderr: written.join('') };
  } finally {
    process.stderr.write = write;
    process.exitCode = undefined;
    if (saved === undefined) delete process.env.BROKER_ID_TOKEN;
    else process.env.BROKER_ID_TOKEN = saved;
  }
}
