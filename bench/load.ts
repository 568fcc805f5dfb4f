/**
 * Load generators over node:http keep-alive connections to 127.0.0.1.
 * - closedLoop: N connections, each sends its next request when the previous answered (finds the saturating rate).
 * - openLoop: requests scheduled at even intervals at a constant rate, each latency measured from its *scheduled*
 *   time, so a stalled server is charged for the requests it delayed (no coordinated omission; autocannon's -R instead
 *   sends each second's requests in one burst).
 * Both are bounded in requests (the token supply) and in time.
 */
import { Agent, request } from 'node:http';

export const EXCHANGE_BODY = '{"grants":{"token":{}}}';

export class TokenSupply {
  private next = 0;
  constructor(private readonly tokens: readonly string[]) {}
  take(): string | undefined {
    return this.tokens[this.next++];
  }
  get left(): number {
    return Math.max(0, this.tokens.length - this.next);
  }
}

export interface Outcome {
  readonly status: number;
  readonly code: string;
}

/** One POST /v1/exchange; resolves when the whole response has arrived. */
export function exchangeOnce(agent: Agent, base: URL, token: string, body = EXCHANGE_BODY, path = '/v1/exchange'): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      {
        agent, host: base.hostname, port: base.port, method: 'POST', path,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const code = status === 200 ? 'ok' : String(res.headers['x-broker-code'] ?? status);
        res.on('data', () => undefined);
        res.on('end', () => resolve({ status, code }));
        res.on('error', () => resolve({ status: 0, code: 'response_error' }));
      },
    );
    req.on('error', () => resolve({ status: 0, code: 'connection_error' }));
    req.end(body);
  });
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** What each request sends: the exchange body and path by default (another POST endpoint, e.g. cfssl's sign, for comparisons). */
export interface RequestShape {
  readonly body?: string;
  readonly path?: string;
}

export interface Window {
  /** Called once when the measured window starts and once when it ends (e.g. to read the server's CPU time). */
  readonly mark: (at: 'start' | 'end') => Promise<void>;
}

export interface PhaseResult {
  readonly sent: number;
  /** Completed in the measured window. */
  readonly completed: number;
  readonly windowSeconds: number;
  readonly codes: Record<string, number>;
  /** Milliseconds, sorted, for requests of the measured window. */
  readonly latencies: Float64Array;
  readonly timedOut: number;
}

function tally(codes: Record<string, number>, code: string): void {
  codes[code] = (codes[code] ?? 0) + 1;
}

/** `connections` closed loops for warmupMs + measureMs; throughput counted only inside the measured window. */
export async function closedLoop(base: URL, supply: TokenSupply, options: { connections: number; warmupMs: number; measureMs: number } & Window & RequestShape): Promise<PhaseResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const codes: Record<string, number> = {};
  const latencies: number[] = [];
  let sent = 0;
  let completed = 0;
  let measuring = false;
  const start = performance.now();
  const windowStart = start + options.warmupMs;
  const windowEnd = windowStart + options.measureMs;
  let startMarked: Promise<void> | undefined;
  let endMarked: Promise<void> | undefined;
  let windowStartedAt = windowStart;
  let windowEndedAt = windowEnd;
  await Promise.all(
    Array.from({ length: options.connections }, async () => {
      for (;;) {
        const now = performance.now();
        if (!measuring && now >= windowStart && !startMarked) {
          measuring = true;
          windowStartedAt = now;
          startMarked = options.mark('start');
        }
        if (now >= windowEnd) break;
        const token = supply.take();
        if (token === undefined) break;
        sent++;
        const outcome = await exchangeOnce(agent, base, token, options.body, options.path);
        const end = performance.now();
        if (measuring && !endMarked) {
          completed++;
          tally(codes, outcome.code);
          latencies.push(end - now);
        }
        if (measuring && !endMarked && (end >= windowEnd || supply.left === 0)) {
          windowEndedAt = end;
          endMarked = options.mark('end');
        }
      }
    }),
  );
  if (!endMarked) {
    windowEndedAt = performance.now();
    endMarked = options.mark('end');
  }
  await Promise.all([startMarked, endMarked]);
  agent.destroy();
  return { sent, completed, windowSeconds: (windowEndedAt - windowStartedAt) / 1000, codes, latencies: Float64Array.from(latencies).sort(), timedOut: 0 };
}

/**
 * Constant-rate open loop: request i is due at start + i/rate; a 1 ms ticker sends every due request (so a request
 * goes out at most ~1 ms late, and that lateness is charged to its latency). Latencies of the first warmupMs are dropped.
 */
export async function openLoop(base: URL, supply: TokenSupply, options: { rate: number; warmupMs: number; measureMs: number; connections: number; graceMs: number } & Window & RequestShape): Promise<PhaseResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const total = Math.floor((options.rate * (options.warmupMs + options.measureMs)) / 1000);
  const interval = 1000 / options.rate;
  const codes: Record<string, number> = {};
  const latencies: number[] = [];
  const start = performance.now() + 5;
  const windowStart = start + options.warmupMs;
  let sent = 0;
  let completed = 0;
  let settled = 0;
  let startMarked: Promise<void> | undefined;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));

  const fire = (due: number, token: string) => {
    sent++;
    void exchangeOnce(agent, base, token, options.body, options.path).then((outcome) => {
      const latency = performance.now() - due;
      settled++;
      if (due >= windowStart) {
        completed++;
        tally(codes, outcome.code);
        latencies.push(latency);
      }
      if (settled === total) finish();
    });
  };
  let index = 0;
  const tick = () => {
    const now = performance.now();
    if (!startMarked && now >= windowStart) startMarked = options.mark('start');
    while (index < total && start + index * interval <= now) {
      const token = supply.take();
      if (token === undefined) {
        index = total; // out of tokens: stop scheduling (reported as a short run)
        break;
      }
      fire(start + index * interval, token);
      index++;
    }
    if (index < total) setTimeout(tick, Math.max(0, Math.min(1, start + index * interval - performance.now())));
    else if (settled === sent) finish();
  };
  setTimeout(tick, 5);
  const timer = setTimeout(finish, options.warmupMs + options.measureMs + options.graceMs);
  await done;
  clearTimeout(timer);
  startMarked ??= options.mark('start');
  await startMarked;
  await options.mark('end');
  agent.destroy();
  const measuredSeconds = options.measureMs / 1000;
  return { sent, completed, windowSeconds: measuredSeconds, codes, latencies: Float64Array.from(latencies).sort(), timedOut: sent - settled };
}
