/**
 * Config keys do what docs/configuration.md says, or the broker refuses them: none is silently accepted and ignored.
 * (The google section: exchange-google.test.ts; the Redis replay store: replicas.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Router } from 'express';
import { AUDIENCE } from './support/policies.js';
import { startHarness } from './support/harness.js';

function whoAmI(): Router {
  const router = Router();
  router.get('/whoami', (req, res) => void res.json({ ip: req.ip }));
  return router;
}

describe('server.trustProxy', () => {
  for (const trustProxy of [true, false]) {
    it(`${trustProxy ? 'takes' : 'ignores'} the client address from X-Forwarded-For when ${trustProxy}`, async () => {
      const h = await startHarness({ trustProxy, overrides: { extraRoutes: whoAmI() } });
      try {
        const result = await h.call('/whoami', { headers: { 'x-forwarded-for': '203.0.113.7' } });
        assert.equal(result.status, 200, result.text);
        if (trustProxy) assert.equal(result.body.ip, '203.0.113.7');
        else assert.match(String(result.body.ip), /127\.0\.0\.1$/);
      } finally {
        await h.close();
      }
    });
  }
});

describe('gitlab[].requestTimeout', () => {
  it("bounds that issuer's GitLab API calls, well inside a longer limits.factTimeout", async () => {
    const h = await startHarness({ issuerExtra: 'requestTimeout: 1s', factTimeout: '20s' });
    try {
      h.gitlab.faults.jobsDelayMs = 4000;
      const started = performance.now();
      const result = await h.exchange(await h.gitlab.token(AUDIENCE));
      const elapsedMs = performance.now() - started;
      assert.equal(result.status, 503, result.text);
      assert.equal(result.body.code, 'upstream_unavailable');
      // Without requestTimeout the 20 s fact deadline would have waited for the 4 s answer.
      assert.ok(elapsedMs < 3500, `the lookup was not cut at requestTimeout (${Math.round(elapsedMs)} ms)`);
    } finally {
      h.gitlab.faults.jobsDelayMs = undefined;
      await h.close();
    }
  });
});
