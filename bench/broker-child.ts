/**
 * The broker under test, in its own process so it can be pinned to one core (`taskset -c 0`) and its CPU time read
 * with process.cpuUsage(). Built through the composition root exactly as `serve` builds it (production defaults:
 * file audit, memory replay store, default metrics), except for ephemeral signing keys.
 * Talks to bench/run.js over the IPC channel: sends { url } once listening, answers 'cpu' with its CPU usage.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import type { BrokerConfig } from '../src/config/schema.js';
import { createBroker } from '../src/main.js';

export interface ChildSettings {
  readonly issuer: string;
  readonly audience: string;
  readonly policyPath: string;
  readonly auditFile: string;
  readonly apiTokenFile: string;
  /** CA files for the linkerd grant (bench/linkerd-exchange.ts); without them the broker has no CA. */
  readonly linkerd?: { readonly issuerCertFile: string; readonly issuerKeyFile: string; readonly trustAnchorsFile: string };
  /** The google section (bench/google-exchange.ts); ADC from GOOGLE_APPLICATION_CREDENTIALS in the child's environment. */
  readonly google?: { readonly iamCredentialsUrl: string; readonly iamUrl: string; readonly client: 'direct' | 'sdk' };
}

export type ChildRequest = 'cpu' | 'stop';
export type ChildMessage = { url: string } | { cpu: NodeJS.CpuUsage; heapUsed: number } | { error: string };

function send(message: ChildMessage): void {
  process.send?.(message);
}

/**
 * BENCH_HEAP_SAMPLE=FILE: V8's sampling heap profiler, keeping samples of objects the GC already collected, so the
 * profile shows where the hot path *allocates* (not only what stays alive). Written to FILE on 'stop'.
 */
async function startHeapSampling(): Promise<(() => Promise<void>) | undefined> {
  const file = process.env.BENCH_HEAP_SAMPLE;
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
  return async () => {
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: unknown };
    await writeFile(file, JSON.stringify(profile));
  };
}

async function main(): Promise<void> {
  const stopHeapSampling = await startHeapSampling();
  const settings = JSON.parse(process.env.BENCH_BROKER ?? '{}') as ChildSettings;
  const publicUrl = 'http://127.0.0.1:1';
  const config: BrokerConfig = {
    server: { host: '127.0.0.1', port: 0, publicUrl, trustProxy: false },
    gitlab: [{ issuer: settings.issuer, audience: settings.audience, apiUrl: `${settings.issuer}/api/v4`, apiTokenFile: settings.apiTokenFile, maxTokenAge: 7200, requestTimeout: undefined }],
    policy: { path: settings.policyPath, watch: false },
    replay: { store: 'memory' },
    audit: { file: settings.auditFile },
    signing: { keysFile: '(ephemeral)' },
    linkerd: settings.linkerd ? { trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd', ...settings.linkerd } : undefined,
    google: settings.google,
    limits: { factTimeout: 5, requestsPerMinutePerProject: 0, gitlabLookupsPerProject: 60, gitlabLookupWindow: 60, failedAuthPerMinutePerAddress: 60, headersTimeout: 10 },
  };
  const { keys } = await generateSigningJwks();
  const broker = await createBroker(config, { signingKeys: keys });
  if (!(await broker.deps.verifier.ready())) throw new Error('the stand-in issuer keys did not load');
  const url = await broker.listen(0, '127.0.0.1');
  process.on('message', (request: ChildRequest) => {
    if (request === 'cpu') send({ cpu: process.cpuUsage(), heapUsed: process.memoryUsage().heapUsed });
    else if (request === 'stop') void (stopHeapSampling?.() ?? Promise.resolve()).then(() => broker.close()).finally(() => process.exit(0));
  });
  process.on('disconnect', () => void broker.close().finally(() => process.exit(0)));
  send({ url });
}

main().catch((err: unknown) => {
  send({ error: String(err) });
  process.exit(1);
});
