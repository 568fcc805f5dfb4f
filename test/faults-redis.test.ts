/**
 * A real redis-server SIGKILLed in the middle of a stream of exchanges (replay store and project budget on it), then
 * started again on the same port: every answer is 200 or a 503 with Retry-After, never a 500; a refused request makes
 * no GitLab lookup and mints nothing; readiness turns false; the same broker recovers without a restart, and the
 * tokens refused during the outage are then exchanged exactly once. (replicas.test.ts kills Redis between requests.)
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startGitLab } from './support/gitlab.js';
import { startHarness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';
import { startRedis } from './support/redis.js';

async function eventually(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(25);
  }
}

type Phase = 'up' | 'down' | 'back';

interface Outcome {
  readonly phase: Phase;
  readonly token: string;
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number;
  readonly minted: boolean;
}

const WORKERS = 6;
const PER_PHASE = 15;

describe('Redis killed while exchanges stream in', () => {
  it('answers 200 or 503 only, mints nothing for a refusal, and recovers on the same broker', async () => {
    let redis = await startRedis();
    const gitlab = await startGitLab();
    const h = await startHarness({ gitlab, requestsPerMinutePerProject: 1_000_000, configExtra: `replay: { store: redis, url: "${redis.url}" }` });
    try {
      await eventually(async () => (await h.call('/readyz')).status === 200, 10_000, 'the broker connects to Redis');
      const jobLookupsBefore = gitlab.hitCount('/api/v4/projects');
      const outcomes: Outcome[] = [];
      let phase: Phase = 'up';
      let stop = false;
      const count = (which: Phase, status: number) => outcomes.filter((outcome) => outcome.phase === which && outcome.status === status).length;

      const workers = Array.from({ length: WORKERS }, async () => {
        while (!stop) {
          const sentIn = phase;
          const token = await gitlab.token(AUDIENCE);
          const result = await h.exchange(token);
          outcomes.push({
            phase: sentIn, token, status: result.status, code: String(result.body.code ?? 'ok'),
            retryAfter: Number(result.headers.get('retry-after') ?? 0), minted: result.body.grants !== undefined,
          });
        }
      });

      await eventually(() => count('up', 200) >= PER_PHASE, 20_000, `${PER_PHASE} exchanges before the kill`);
      await redis.kill();
      phase = 'down';
      await eventually(() => count('down', 503) >= PER_PHASE, 20_000, `${PER_PHASE} refusals while Redis is down`);
      const ready = await h.call('/readyz');
      assert.equal(ready.status, 503);
      assert.equal((ready.body.checks as Record<string, boolean>).replay, false);

      redis = await startRedis({ port: redis.port });
      phase = 'back';
      await eventually(() => count('back', 200) >= PER_PHASE, 20_000, `${PER_PHASE} exchanges after Redis is back`);
      stop = true;
      await Promise.all(workers);

      const unexpected = outcomes.filter((outcome) => !(outcome.status === 200 || (outcome.status === 503 && ['not_ready', 'upstream_unavailable'].includes(outcome.code))));
      assert.deepEqual(unexpected.map((outcome) => `${outcome.phase} ${outcome.status} ${outcome.code}`), []);
      const refused = outcomes.filter((outcome) => outcome.status === 503);
      assert.ok(refused.every((outcome) => outcome.retryAfter > 0 && !outcome.minted), 'each 503 has Retry-After and no grants');
      const served = outcomes.filter((outcome) => outcome.status === 200);
      assert.ok(served.every((outcome) => outcome.minted));
      assert.equal(gitlab.hitCount('/api/v4/projects') - jobLookupsBefore, served.length, 'a refused request makes no GitLab lookup');

      const records = await h.auditRecords();
      assert.equal(records.filter((record) => record.phase === 'result').length, served.length);
      assert.equal(records.filter((record) => record.phase === 'denied' && record.outcome === 'denied').length, refused.length);
      assert.ok(h.opsLog.some((line) => line.startsWith('error Redis connection lost')), 'the outage is logged');

      // Recovered without a restart: a token refused in the outage is exchanged now, once.
      const retried = refused.slice(0, 5);
      for (const { token } of retried) assert.equal((await h.exchange(token)).status, 200);
      for (const { token } of retried) assert.equal((await h.exchange(token)).body.code, 'token_replayed');
      assert.equal((await h.call('/readyz')).status, 200);
    } finally {
      await h.close();
      await gitlab.close();
      await redis.stop();
    }
  });
});
