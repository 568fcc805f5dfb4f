/**
 * The broker under test, in its own process so it can be pinned to one core (`taskset -c 0`) and its CPU time read
 * with process.cpuUsage(). Built through the composition root exactly as `serve` builds it (production defaults:
 * file audit, memory replay store, default metrics), except for ephemeral signing keys.
 * Talks to bench/run.js over the IPC channel: sends { url } once listening, answers 'cpu' with its CPU usage and
 * 'stats' with its memory and event-loop delay (bench/soak.ts).
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { SERVER_CONNECTION_DEFAULTS, type BrokerConfig } from '../src/config/schema.js';
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
  /** Replay store and rate limit on this Redis (bench/replicas.ts, bench/soak.ts); the memory stores without it. */
  readonly redisUrl?: string;
  /** limits.requestsPerMinutePerProject (0, the default, turns the limiter off: no Redis call at all). */
  readonly requestsPerMinutePerProject?: number;
  /** limits.failedAuthPerMinutePerAddress (default 60); bench/flood.ts sets 0, since all its traffic is from 127.0.0.1. */
  readonly failedAuthPerMinutePerAddress?: number;
}

/** What 'stats' answers: memory now, and the event-loop delay since the previous 'stats' (milliseconds). */
export interface ChildStats {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly loopDelay: { readonly mean: number; readonly p50: number; readonly p99: number; readonly max: number };
}

export type ChildRequest = 'cpu' | 'stats' | 'stop';
export type ChildMessage = { url: string } | { cpu: NodeJS.CpuUsage; heapUsed: number } | { stats: ChildStats } | { error: string };

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

function readMemory(): Pick<ChildStats, 'rss' | 'heapUsed' | 'heapTotal' | 'external'> {
  const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external };
}

async function main(): Promise<void> {
  const stopHeapSampling = await startHeapSampling();
  const settings = JSON.parse(process.env.BENCH_BROKER ?? '{}') as ChildSettings;
  const publicUrl = 'http://127.0.0.1:1';
  const config: BrokerConfig = {
    server: { host: '127.0.0.1', port: 0, publicUrl, trustProxy: false, ...SERVER_CONNECTION_DEFAULTS },
    gitlab: [{ issuer: settings.issuer, audience: settings.audience, apiUrl: `${settings.issuer}/api/v4`, apiTokenFile: settings.apiTokenFile, maxTokenAge: 7200, requestTimeout: undefined }],
    policy: { path: settings.policyPath, watch: false },
    replay: settings.redisUrl ? { store: 'redis', url: settings.redisUrl, waitReplicas: 0 } : { store: 'memory' },
    audit: { file: settings.auditFile },
    signing: { keysFile: '(ephemeral)' },
    linkerd: settings.linkerd ? { trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd', ...settings.linkerd } : undefined,
    google: settings.google,
    limits: { factTimeout: 5, requestsPerMinutePerProject: settings.requestsPerMinutePerProject ?? 0, gitlabLookupsPerProject: 60, gitlabLookupWindow: 60, failedAuthPerMinutePerAddress: settings.failedAuthPerMinutePerAddress ?? 60, headersTimeout: 10 },
  };
  const { keys } = await generateSigningJwks();
  const broker = await createBroker(config, { signingKeys: keys });
  if (!(await broker.deps.verifier.ready())) throw new Error('the stand-in issuer keys did not load');
  const url = await broker.listen(0, '127.0.0.1');
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  process.on('message', (request: ChildRequest) => {
    if (request === 'cpu') send({ cpu: process.cpuUsage(), heapUsed: process.memoryUsage().heapUsed });
    else if (request === 'stats') {
      send({ stats: { ...readMemory(), loopDelay: { mean: loopDelay.mean / 1e6, p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 } } });
      loopDelay.reset();
    }
    else if (request === 'stop') void (stopHeapSampling?.() ?? Promise.resolve()).then(() => broker.close()).finally(() => process.exit(0));
  });
  process.on('disconnect', () => void broker.close().finally(() => process.exit(0)));
  send({ url });
}

main().catch((err: unknown) => {
  send({ error: String(err) });
  process.exit(1);
});
