/**
 * The broker's own view of request latency, from its Prometheus histogram: scraped before and after a phase, the
 * bucket deltas bound the server-side p99. Where the generator's p99 is far above it, the tail is outside the broker's
 * request handling (the generator, the stand-in, the kernel), not in the code under test.
 */
const BUCKET = /^oidc_broker_request_duration_seconds_bucket\{le="([^"]+)",endpoint="\/v1\/exchange"\} (\d+)/;

export type BucketCounts = Map<string, number>;

export async function scrapeExchangeBuckets(base: URL): Promise<BucketCounts> {
  const text = await (await fetch(new URL('/metrics', base))).text();
  const counts: BucketCounts = new Map();
  for (const line of text.split('\n')) {
    const match = BUCKET.exec(line);
    if (match) counts.set(match[1] as string, Number(match[2]));
  }
  return counts;
}

/** The upper bound (ms) of the bucket holding the given percentile of the requests between two scrapes. */
export function percentileUpperBoundMs(before: BucketCounts, after: BucketCounts, percentile: number): number | undefined {
  const bounds = [...after.keys()].filter((le) => le !== '+Inf').sort((a, b) => Number(a) - Number(b));
  const total = (after.get('+Inf') ?? 0) - (before.get('+Inf') ?? 0);
  if (total <= 0) return undefined;
  for (const le of bounds) {
    const within = (after.get(le) ?? 0) - (before.get(le) ?? 0);
    if (within >= (total * percentile) / 100) return Number(le) * 1000;
  }
  return Number.POSITIVE_INFINITY;
}
