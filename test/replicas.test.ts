/**
 * Two broker replicas (two createBroker instances from broker.yaml with `replay.store: redis`) sharing one real redis-server,
 * answered by one stand-in GitLab: an ID token is exchanged once whichever replica it reaches, and a Redis killed
 * mid-run turns both to 503 not_ready (nothing minted) until it is back.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type CallResult, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';
import { startRedis, type RedisServer } from './support/redis.js';

async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

function statuses(results: readonly CallResult[]): string {
  return results.map((result) => `${result.status} ${String(result.body.code ?? '')}`.trim()).sort().join(', ');
}

describe('two replicas sharing Redis', () => {
  let redis: RedisServer;
  let gitlab: StandInGitLab;
  let replicas: Harness[] = [];

  /** A broker configured as an operator would (`replay: { store: redis, url }`), ready once it has reached Redis. */
  async function replica(): Promise<Harness> {
    const h = await startHarness({ gitlab, configExtra: `replay: { store: redis, url: "${redis.url}" }` });
    await eventually(async () => (await h.call('/readyz')).status === 200, 10_000, 'the replica connects to Redis');
    return h;
  }

  before(async () => {
    redis = await startRedis();
    gitlab = await startGitLab();
    replicas = [await replica(), await replica()];
  });
  after(async () => {
    for (const h of replicas) await h.close();
    await gitlab.close();
    await redis.stop();
  });

  it('one token sent to both replicas at once: exactly one 200 and one 409 token_replayed', async () => {
    const token = await gitlab.token(AUDIENCE);
    const results = await Promise.all(replicas.map((h) => h.exchange(token)));
    assert.equal(statuses(results), '200, 409 token_replayed');
  });

  it('200 tokens, each sent to both replicas at once: every token is exchanged exactly once', async () => {
    const tokens = await Promise.all(Array.from({ length: 200 }, () => gitlab.token(AUDIENCE)));
    const results = await Promise.all(tokens.map((token) => Promise.all(replicas.map((h) => h.exchange(token)))));
    const tally = new Map<string, number>();
    for (const pair of results) tally.set(statuses(pair), (tally.get(statuses(pair)) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(tally), { '200, 409 token_replayed': 200 });
  });

  it('Redis killed: both replicas answer 503 not_ready and report not ready, then recover without a restart', async () => {
    await redis.kill();
    const token = await gitlab.token(AUDIENCE);
    const results = await Promise.all(replicas.map((h) => h.exchange(token)));
    assert.equal(statuses(results), '503 not_ready, 503 not_ready');
    for (const result of results) assert.ok(Number(result.headers.get('retry-after')) > 0, 'Retry-After is set');
    for (const h of replicas) {
      await eventually(async () => (await h.call('/readyz')).status === 503, 5_000, 'readiness turns false');
      assert.deepEqual((await h.call('/readyz')).body.checks, { accepting: true, policy: true, issuers: true, replay: false, audit: true });
      assert.ok(h.opsLog.some((line) => line.startsWith('error Redis connection lost')), h.opsLog.join('\n'));
      const refusals = (await h.auditRecords()).filter((record) => record.code === 'not_ready');
      assert.equal(refusals.length, 1);
      assert.equal(refusals[0]?.outcome, 'denied');
    }

    redis = await startRedis({ port: redis.port });
    for (const h of replicas) await eventually(async () => (await h.call('/readyz')).status === 200, 15_000, 'readiness returns');
    // The refused token was not spent: it is exchanged once now.
    assert.equal(statuses(await Promise.all(replicas.map((h) => h.exchange(token)))), '200, 409 token_replayed');
  });
});

describe('a project budget shared by two replicas through Redis', () => {
  it('spends one budget whichever replica answers, and tells the caller when to retry', async () => {
    const redis = await startRedis();
    const gitlab = await startGitLab();
    const replicas: Harness[] = [];
    try {
      for (let i = 0; i < 2; i++) replicas.push(await startHarness({ gitlab, requestsPerMinutePerProject: 2, configExtra: `replay: { store: redis, url: "${redis.url}" }` }));
      for (const h of replicas) await eventually(async () => (await h.call('/readyz')).status === 200, 10_000, 'the replica connects to Redis');
      const [a, b] = replicas as [Harness, Harness];
      assert.equal((await a.exchange(await gitlab.token(AUDIENCE))).status, 200);
      assert.equal((await b.exchange(await gitlab.token(AUDIENCE))).status, 200);
      const refused = await a.exchange(await gitlab.token(AUDIENCE));
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.body.code, 'rate_limited');
      // Two a minute: the next unit is at most 30 s away (less the time the exchanges took).
      const retryAfter = Number(refused.headers.get('retry-after'));
      assert.ok(retryAfter >= 10 && retryAfter <= 30, `Retry-After ${retryAfter}`);
      assert.equal((await b.exchange(await gitlab.token(AUDIENCE))).status, 429);
    } finally {
      for (const h of replicas) await h.close();
      await gitlab.close();
      await redis.stop();
    }
  });
});
