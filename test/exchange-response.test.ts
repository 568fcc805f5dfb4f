/**
 * The broker's answers and the CLI's schema of them (src/core/exchange-response.ts) are one contract: the real
 * server's exchange, explain and refusal answers parse under the schemas with nothing left over, so a field added or
 * renamed on one side alone fails here.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ZodType } from 'zod';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { exchangeBody } from '../src/cli/commands/exchange.js';
import { exchangeResponseSchema, explainResponseSchema, firstIssue, grantedSchema, problemSchema } from '../src/core/exchange-response.js';
import { GRANT_KINDS, GRANTS, type GrantKind } from '../src/core/grants.js';
import { missingFieldText } from '../src/core/json-path.js';
import { startGoogleBroker, type GoogleBroker } from './support/google-broker.js';
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

describe('the grants of an answer, one entry per registered kind', () => {
  const answer = (grants: Record<string, unknown>) => ({
    requestId: 'r1', rule: 'deploy', approvals: {}, grants,
    subject: { project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main', sha: 'abc', user_login: 'alice' },
  });
  const token = { token: 'eyJ.x.y', expiresAt: '2026-11-26T08:00:00.000Z' };

  it('reads each kind with its module\'s own response schema, and no other key', () => {
    assert.deepEqual(Object.keys(grantedSchema.shape), [...GRANT_KINDS]);
    for (const kind of GRANT_KINDS) assert.equal(grantedSchema.shape[kind].unwrap(), GRANTS[kind].cli.responseSchema, kind);
  });

  it('refuses a grant kind no module reads, naming it, instead of dropping the credential', () => {
    assert.equal(exchangeResponseSchema.safeParse(answer({ token })).success, true);
    const parsed = exchangeResponseSchema.safeParse(answer({ token, aws: { accessKeyId: 'AKIA', expiresAt: token.expiresAt } }), { error: missingFieldText });
    assert.equal(parsed.success, false);
    assert.equal(parsed.success ? '' : firstIssue(parsed.error), `grants: not a grant kind this CLI reads: aws (it reads ${GRANT_KINDS.join(', ')})`);
  });

  it('refuses a credential whose expiry is not a time', () => {
    const parsed = exchangeResponseSchema.safeParse(answer({ token: { ...token, expiresAt: 'soon' } }));
    assert.equal(parsed.success ? '' : firstIssue(parsed.error), 'grants.token.expiresAt: must be an ISO 8601 time');
  });
});

describe('a real answer with every registered kind', () => {
  let gb: GoogleBroker;
  before(async () => {
    gb = await startGoogleBroker();
  });
  after(() => gb.close());

  it('parses with nothing left over, one credential per kind the CLI asked for', async () => {
    const wanted = new Map<GrantKind, string | undefined>(GRANT_KINDS.map((kind) => [kind, undefined]));
    const { grants } = exchangeBody(wanted, { csrPem: generateKeyAndRequest().csrPem });
    const result = await gb.h.exchange(await gb.h.gitlab.token(AUDIENCE, { environment: 'production' }), grants);
    assert.equal(result.status, 200, result.text);
    holds(exchangeResponseSchema, result.body);
    assert.deepEqual(Object.keys(result.body.grants as object), [...GRANT_KINDS]);
  });
});
