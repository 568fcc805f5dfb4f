/**
 * The broker's answers and the CLI's schema of them (src/core/exchange-response.ts) are one contract: the real
 * server's exchange, explain and refusal answers parse under the schemas with nothing left over, so a field added or
 * renamed on one side alone fails here.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ZodType } from 'zod';
import { exchangeResponseSchema, explainResponseSchema, problemSchema } from '../src/core/exchange-response.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

/** Parses, and nothing was stripped: the schema names every field the server sent. */
function holds<T>(schema: ZodType<T>, body: unknown): void {
  const parsed = schema.safeParse(body);
  assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues));
  assert.deepEqual(parsed.data, body);
}

describe('the answers the CLI reads', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('an exchange answer', async () => {
    const result = await h.exchange(await h.gitlab.token(AUDIENCE));
    assert.equal(result.status, 200);
    holds(exchangeResponseSchema, result.body);
  });

  it('an explain answer, allowed and denied', async () => {
    for (const overrides of [{}, { ref_path: 'refs/heads/feature', ref_protected: 'false' }]) {
      const result = await h.call('/v1/explain', { token: await h.gitlab.token(AUDIENCE, overrides), body: { grants: { token: {} } } });
      assert.equal(result.status, 200);
      holds(explainResponseSchema, result.body);
    }
  });

  it('a refusal with reasons', async () => {
    const result = await h.exchange(await h.gitlab.token(AUDIENCE, { ref_path: 'refs/heads/feature', ref_protected: 'false' }));
    assert.equal(result.status, 403);
    assert.ok(Array.isArray(result.body.reasons));
    holds(problemSchema, result.body);
  });

  it('an exchange answer missing a credential does not parse', () => {
    const parsed = exchangeResponseSchema.safeParse({ requestId: 'r', rule: 'x', subject: {}, approvals: {}, grants: { token: { expiresAt: '2026-01-01T00:00:00Z' } } });
    assert.equal(parsed.success, false);
  });
});
