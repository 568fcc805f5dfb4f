/**
 * A garbage flood beside valid traffic, against a real broker on loopback: 25 invalid requests (six kinds: no token,
 * malformed token, bad signature, oversized body, wrong content type, unknown grant) for each valid one, many in
 * flight at once. Every invalid request is refused with its code before any network I/O (the stand-in GitLab counts
 * discovery, JWKS and jobs API calls: they must equal what the valid ones need), every valid one is served, and the
 * spare token the garbage carried was never spent. Counts only; bench/flood.ts is the timed version with latencies.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { garbageKinds, postExchange, validRequest, type FloodRequest, type PostOutcome } from './support/garbage.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const VALID = 40;
const INVALID_PER_VALID = 25;
const IN_FLIGHT = 24;

interface Sent {
  readonly expected: { status: number; code: string };
  readonly kind: string;
  readonly request: FloodRequest;
}

/** Runs every request with at most `inFlight` outstanding, in order of the list. */
async function flood(base: URL, requests: readonly Sent[], inFlight: number): Promise<PostOutcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  const outcomes: PostOutcome[] = new Array(requests.length);
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < requests.length) {
      const index = next++;
      outcomes[index] = await postExchange(agent, base, (requests[index] as Sent).request);
    }
  }));
  agent.destroy();
  return outcomes;
}

describe('a garbage flood beside valid exchanges', () => {
  let h: Harness;
  before(async () => {
    // Every request comes from 127.0.0.1: with the per-address budget of failed authentications on, the garbage
    // would soon be answered 429 before its token is read (abuse.test.ts), and so would the valid requests.
    h = await startHarness({ limits: 'failedAuthPerMinutePerAddress: 0' });
  });
  after(() => h.close());

  it('refuses every invalid request before any network I/O and serves every valid one', async () => {
    const spare = await h.gitlab.token(AUDIENCE);
    // One exchange first, so the issuer's discovery and keys are loaded before counting.
    assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200);
    const kinds = garbageKinds(spare);
    const requests: Sent[] = [];
    for (let v = 0; v < VALID; v++) {
      for (let i = 0; i < INVALID_PER_VALID; i++) {
        const kind = kinds[(v * INVALID_PER_VALID + i) % kinds.length]!;
        requests.push({ kind: kind.name, expected: kind, request: kind.request });
      }
      requests.push({ kind: 'valid', expected: { status: 200, code: 'ok' }, request: validRequest(await h.gitlab.token(AUDIENCE)) });
    }
    const before = { discovery: h.gitlab.hitCount('/.well-known'), keys: h.gitlab.hitCount('/oauth'), jobs: h.gitlab.hitCount('/api/v4/projects') };
    const auditBefore = (await h.auditRecords()).length;

    const outcomes = await flood(new URL(h.url), requests, IN_FLIGHT);

    const wrong = new Map<string, number>();
    outcomes.forEach((outcome, index) => {
      const { kind, expected } = requests[index] as Sent;
      if (outcome.status === expected.status && outcome.code === expected.code) return;
      const key = `${kind}: ${outcome.status} ${outcome.code}`;
      wrong.set(key, (wrong.get(key) ?? 0) + 1);
    });
    assert.deepEqual(Object.fromEntries(wrong), {}, 'answers other than expected');
    assert.equal(h.gitlab.hitCount('/.well-known') - before.discovery, 0, 'discovery fetched during the flood');
    assert.equal(h.gitlab.hitCount('/oauth') - before.keys, 0, 'JWKS fetched during the flood');
    assert.equal(h.gitlab.hitCount('/api/v4/projects') - before.jobs, VALID, 'job lookups: one per valid exchange, none for garbage');

    const records = (await h.auditRecords()).slice(auditBefore);
    assert.equal(records.filter((record) => record.phase === 'denied').length, VALID * INVALID_PER_VALID, 'one denied audit record per invalid request');
    assert.equal(records.filter((record) => record.phase === 'result').length, VALID);
    assert.equal((await h.exchange(spare)).status, 200, 'the spare token the garbage carried was never reserved');
  });
});
