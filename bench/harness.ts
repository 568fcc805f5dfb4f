/**
 * Shared by the benchmarks (run.ts, linkerd-exchange.ts): pinning, the broker child process (bench/broker-child.ts,
 * pinned to core 0, CPU time over IPC), CPU accounting around a measured window, and formatting.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ChildRequest, ChildSettings, ChildStats } from './broker-child.js';
import { GcTrace, type GcTotals } from './gc.js';
import type { PhaseResult } from './load.js';

export const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/**
 * Pins every thread of `pid` to `core` (or a taskset list such as '0,1'). A few bounded retries: `taskset -a` fails
 * if a thread exits while it walks them.
 */
export function pin(core: number | string, pid: number = process.pid): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (spawnSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' }).status === 0) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  throw new Error('taskset failed: the benchmark needs util-linux taskset and 2 cores');
}

export interface BrokerProcess {
  readonly url: URL;
  readonly child: ChildProcess;
  readonly gc: GcTrace;
  cpuSeconds(): Promise<number>;
  /** Memory and event-loop delay since the previous call (bench/broker-child.ts only). */
  stats(): Promise<ChildStats>;
  stop(): Promise<void>;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime of a whole process (all threads) from /proc/PID/stat, in seconds (resolution 1/CLK_TCK). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // fields 14 and 15 of proc(5)
}

/**
 * `child`: another server speaking the same IPC protocol (bench/floor-child.ts), with extra environment.
 * `core`: the core the child is pinned to (0 unless said).
 */
export async function startBroker(settings: ChildSettings, profileDir: string | undefined, child_: { script: string; env: Record<string, string> } = { script: './broker-child.js', env: {} }, core = 0): Promise<BrokerProcess> {
  // BENCH_BROKER_FLAGS: extra node flags for the broker (e.g. --heap-prof), for investigations.
  const extra = (process.env.BENCH_BROKER_FLAGS ?? '').split(' ').filter(Boolean);
  const nodeArgs = ['--trace-gc', ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...extra, here(child_.script)];
  const child = spawn('taskset', ['-c', String(core), process.execPath, ...nodeArgs], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, ...child_.env, BENCH_BROKER: JSON.stringify(settings), LOG_LEVEL: 'warn' },
  });
  const gc = new GcTrace();
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => gc.feed(chunk));
  const waiting: Array<(message: ChildMessage) => void> = [];
  child.on('message', (message: ChildMessage) => waiting.shift()?.(message));
  const next = () => new Promise<ChildMessage>((resolve) => waiting.push(resolve));
  const first = await Promise.race([next(), new Promise<ChildMessage>((resolve) => setTimeout(() => resolve({ error: 'broker did not start in 20 s' }), 20_000))]);
  if (!('url' in first)) {
    child.kill();
    throw new Error(`broker child: ${'error' in first ? first.error : 'unexpected message'}`);
  }
  return {
    url: new URL(first.url),
    child,
    gc,
    async cpuSeconds() {
      const reply = next();
      child.send('cpu' satisfies ChildRequest);
      const message = await reply;
      if (!('cpu' in message)) throw new Error('broker child: no cpu usage');
      return (message.cpu.user + message.cpu.system) / 1e6;
    },
    async stats() {
      const reply = next();
      child.send('stats' satisfies ChildRequest);
      const message = await reply;
      if (!('stats' in message)) throw new Error('broker child: no stats');
      return message.stats;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send('stop' satisfies ChildRequest);
      }),
  };
}

export interface Measured {
  readonly result: PhaseResult;
  readonly serverCpuSeconds: number;
  readonly generatorCpuSeconds: number;
  readonly gc: GcTotals;
}

/** What `measured` needs from a server under test: its CPU time so far, and (optionally) its GC trace. */
export interface MeasuredServer {
  cpuSeconds(): Promise<number>;
  readonly gc?: GcTrace;
}

/** Wraps a phase so the server's CPU time, this process's CPU time and the GC totals cover exactly its window. */
export async function measured(server: MeasuredServer, run: (mark: (at: 'start' | 'end') => Promise<void>) => Promise<PhaseResult>): Promise<Measured> {
  let cpuStart = 0;
  let cpuEnd = 0;
  let ownStart = process.cpuUsage();
  let ownEnd = ownStart;
  let gc = GcTrace.empty();
  const result = await run(async (at) => {
    if (at === 'start') {
      ownStart = process.cpuUsage();
      server.gc?.take();
      cpuStart = await server.cpuSeconds();
    } else {
      ownEnd = process.cpuUsage();
      gc = server.gc?.take() ?? gc;
      cpuEnd = await server.cpuSeconds();
    }
  });
  const own = process.cpuUsage(ownStart);
  const ownSeconds = ownEnd === ownStart ? (own.user + own.system) / 1e6 : (ownEnd.user - ownStart.user + ownEnd.system - ownStart.system) / 1e6;
  return { result, serverCpuSeconds: cpuEnd - cpuStart, generatorCpuSeconds: ownSeconds, gc };
}

export const fmt = (value: number, digits = 0) => (Number.isFinite(value) ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');
export const codesText = (codes: Record<string, number>) => Object.entries(codes).map(([code, count]) => `${code}=${count}`).join(' ');
export const gcText = (gc: GcTotals, requests: number) =>
  `${gc.collections} GCs (${gc.full} full), pauses ${fmt(gc.pauseMs, 1)} ms total, longest ${fmt(gc.maxPauseMs, 2)} ms, ~${fmt((gc.allocatedMb * 1024) / Math.max(1, requests), 1)} KiB allocated per request`;

/** This process's CPU (µs) per call of `call`, made `count` times by `concurrency` loops at once. */
export async function cpuPerCall(concurrency: number, count: number, call: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < count) await call();
  }));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}
