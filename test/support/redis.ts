/**
 * A real redis-server for tests: on a free loopback port, no persistence, started and stopped by the test. Plain TCP,
 * or TLS only (`--port 0 --tls-port N`) with certificates the test made; optional extra arguments (ACL users).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from './free-port.js';

export interface RedisServerOptions {
  /** Reuse this port (a restart after a kill); a free one otherwise. */
  readonly port?: number;
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
  readonly extraArgs?: readonly string[];
}

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:port` (or `rediss://`). */
  readonly url: string;
  /** The redis-server process (benchmarks read its CPU time). */
  readonly pid: number;
  /** SIGKILL, as a crash would: no goodbye to clients. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const INSTALL_HINT = 'redis-server was not found: install it with `apt-get install redis-server` (npm test\'s pretest step, scripts/ensure-tools.sh, does so when run as root)';

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

/** Starts redis-server and resolves once it accepts connections (its own log says so); rejects saying why not. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const listen = options.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile, '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const args = [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', '', '--loglevel', 'notice', ...(options.extraArgs ?? [])];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not start within 20 s:\n${output}`)), 20_000);
    function fail(err: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    }
    const onError = (err: NodeJS.ErrnoException) => fail(err.code === 'ENOENT' ? new Error(INSTALL_HINT) : err);
    const onExit = (code: number | null, signal: string | null) => fail(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`));
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!output.includes('Ready to accept connections')) return;
      clearTimeout(timer);
      child.off('error', onError).off('exit', onExit);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      resolve();
    };
    child.once('error', onError).once('exit', onExit);
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  // Keep draining its log so a chatty server never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    port,
    pid: child.pid ?? 0,
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    async kill() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}
