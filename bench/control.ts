/**
 * Runs the latency control (control-server.ts) pinned to core 0 at a given rate and CPU per request, with the same
 * open-loop generator as the broker's half-load phase, and reports its latency percentiles.
 */
import { spawn } from 'node:child_process';
import { here } from './harness.js';
import { openLoop, percentile, TokenSupply } from './load.js';

export interface ControlLatency {
  readonly spinMicros: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export async function controlLatency(options: { rate: number; spinMicros: number; warmupMs: number; measureMs: number }): Promise<ControlLatency> {
  const child = spawn('taskset', ['-c', '0', process.execPath, here('./control-server.js'), String(Math.round(options.spinMicros))], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the control server did not start in 10 s')), 10_000);
      child.stdout?.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        resolve(Number(chunk.toString().trim()));
      });
      child.once('exit', () => reject(new Error('the control server exited')));
    });
    const supply = new TokenSupply(Array.from({ length: Math.ceil((options.rate * (options.warmupMs + options.measureMs)) / 1000) + 10 }, () => 'control'));
    const result = await openLoop(new URL(`http://127.0.0.1:${port}`), supply, {
      rate: options.rate, warmupMs: options.warmupMs, measureMs: options.measureMs, connections: 64, graceMs: 5000, mark: async () => undefined,
    });
    const latencies = result.latencies;
    return { spinMicros: options.spinMicros, rate: options.rate, p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), max: percentile(latencies, 100) };
  } finally {
    child.kill();
  }
}
