/**
 * The Cloud Spanner emulator (Debian package google-cloud-cli-spanner-emulator) for a test suite: started on free
 * loopback ports in its own process group (its gateway starts a child emulator that outlives a plain kill), stopped by
 * killing the whole group. When it is not installed the suite fails saying how to install it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Spanner, type Database } from '@google-cloud/spanner';
import { EmulatorAuthClient } from '../../src/spanner/auth.js';
import { emulatorSessionEnv, SESSION_POOL } from '../../src/spanner/connect.js';
import { freePort } from './free-port.js';

const SDK_ROOTS = ['/usr/lib/google-cloud-sdk', '/usr/share/google-cloud-sdk', '/opt/google-cloud-sdk'];

/** The gateway binary, or an error naming the package to install. */
export function emulatorGateway(): string {
  const candidates = [process.env.SPANNER_EMULATOR_BIN_DIR, ...SDK_ROOTS.map((root) => join(root, 'bin', 'cloud_spanner_emulator'))].filter((dir): dir is string => Boolean(dir));
  const dir = candidates.find((candidate) => existsSync(join(candidate, 'gateway_main')) && existsSync(join(candidate, 'emulator_main')));
  if (!dir) {
    throw new Error('the Cloud Spanner emulator is not installed: sudo apt-get install google-cloud-cli-spanner-emulator '
      + '(from https://packages.cloud.google.com/apt, see https://cloud.google.com/sdk/docs/install#deb), or set SPANNER_EMULATOR_BIN_DIR');
  }
  return join(dir, 'gateway_main');
}

export interface Emulator {
  /** host:port for SPANNER_EMULATOR_HOST. */
  readonly host: string;
  readonly project: string;
  readonly instance: string;
  /** Everything the emulator printed (with --log_requests: every gRPC request). */
  output(): string;
  /** Creates a database and returns its full name. */
  createDatabase(id: string): Promise<string>;
  /** A handle on a database of the instance (closed by stop()). */
  database(id: string): Database;
  readonly client: Spanner;
  stop(): Promise<void>;
}

async function waitForOutput(child: ChildProcess, output: () => string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(output())) {
    if (child.exitCode !== null) throw new Error(`the Spanner emulator exited with ${child.exitCode}:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`the Spanner emulator did not start in ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts an emulator with one instance; `logRequests` makes it print every request (for request-tag checks). */
export async function startEmulator(options: { logRequests?: boolean } = {}): Promise<Emulator> {
  const gateway = emulatorGateway();
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const args = ['--hostname', '127.0.0.1', '--grpc_port', String(grpcPort), '--http_port', String(httpPort), ...(options.logRequests ? ['--log_requests'] : [])];
  const child = spawn(gateway, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => { text += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString(); });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      return;
    }
    await exited;
  };
  try {
    await waitForOutput(child, () => text, new RegExp(`Server address: 127\\.0\\.0\\.1:${grpcPort}`), 30_000);
    const host = `127.0.0.1:${grpcPort}`;
    process.env.SPANNER_EMULATOR_HOST = host;
    Object.assign(process.env, emulatorSessionEnv(process.env));
    const project = 'test-project';
    const instanceId = 'test-instance';
    const client = new Spanner({ projectId: project, authClient: new EmulatorAuthClient(), disableBuiltInMetrics: true });
    const [instance, operation] = await client.createInstance(instanceId, { config: 'emulator-config', nodes: 1, displayName: 'test' });
    await operation.promise();
    const handles = new Map<string, Database>();
    const database = (id: string): Database => {
      const handle = handles.get(id) ?? instance.database(id, { ...SESSION_POOL });
      handles.set(id, handle);
      return handle;
    };
    return {
      host, project, instance: instanceId, client, database,
      output: () => text,
      async createDatabase(id) {
        const [created, operation] = await instance.createDatabase(id, { poolOptions: { ...SESSION_POOL } });
        await operation.promise();
        handles.set(id, created);
        return `projects/${project}/instances/${instanceId}/databases/${id}`;
      },
      async stop() {
        await Promise.all([...handles.values()].map((handle) => handle.close().catch(() => undefined)));
        await client.close().catch(() => undefined);
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
