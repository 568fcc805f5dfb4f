/**
 * The exchange and explain use cases against in-memory fakes of every port (test/support/fakes.ts): no HTTP, no
 * crypto, milliseconds per case. The HTTP-level suites prove the same behaviour through real servers; these pin the
 * use case's own promises: all-or-nothing minting, the jti released whenever nothing is returned, an audit record on
 * every path, and no credentials without one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exchange } from '../src/app/exchange.js';
import { explain } from '../src/app/explain.js';
import { BrokerError, isBrokerError } from '../src/core/errors.js';
import { fakeWorld, type FakeWorld } from './support/fakes.js';

const BOTH = JSON.stringify({ grants: { token: {}, linkerd: { csr: 'CSR' } } });
const TOKEN_ONLY = JSON.stringify({ grants: { token: {} } });
const JTI_KEY = 'https://gitlab.example.com\njti-1';

let requests = 0;
function run(world: FakeWorld, body = BOTH, token = 'token:jti-1') {
  return exchange(world.deps, { requestId: `req-${++requests}`, token, bodyText: body });
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<BrokerError> {
  let caught: unknown;
  await promise.then(() => assert.fail(`expected ${code}, got a result`), (err: unknown) => (caught = err));
  assert.ok(isBrokerError(caught), `expected a BrokerError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

function phases(world: FakeWorld): string[] {
  return world.audit.records.map((record) => `${record.phase}:${record.outcome}`);
}

describe('exchange use case', () => {
  it('mints every requested grant, writing the intent record before minting and the result after', async () => {
    const world = fakeWorld();
    const result = await run(world);
    assert.equal(result.rule, 'payments-deploy');
    assert.equal(result.grants.token?.token.startsWith('jwt:https://deploy.internal:'), true);
    assert.equal(result.grants.linkerd?.identity, 'deploy.ci.serviceaccount.identity.linkerd.cluster.local');
    assert.deepEqual(phases(world), ['intent:pending', 'result:allowed']);
    const [intent, outcome] = world.audit.records;
    assert.equal(intent?.phase === 'intent' && intent.plans.join(), 'linkerd,token');
    assert.equal(outcome?.phase === 'result' && outcome.minted.length, 2);
    assert.ok(world.replay.reserved.has(JTI_KEY), 'the jti stays spent after a returned exchange');
    assert.deepEqual(world.replay.released, []);
  });

  it('audits the credentials by hash and metadata only, never the credential itself', async () => {
    const world = fakeWorld();
    const result = await run(world, TOKEN_ONLY);
    const text = JSON.stringify(world.audit.records);
    assert.ok(result.grants.token && !text.includes(result.grants.token.token), 'the minted token is in the audit log');
    assert.match(text, /"sha256":"[0-9a-f]{64}"/);
  });

  it('is all-or-nothing: one minter failing returns nothing, releases the jti and audits the denial', async () => {
    const world = fakeWorld();
    world.minters.linkerd.failWith = new BrokerError('upstream_unavailable', 'the certificate authority is not usable');
    await rejectsWith(run(world), 'upstream_unavailable');
    assert.deepEqual(phases(world), ['intent:pending', 'denied:denied']);
    assert.deepEqual(world.replay.released, [JTI_KEY]);
    world.minters.linkerd.failWith = undefined;
    const retried = await run(world);
    assert.ok(retried.grants.linkerd && retried.grants.token, 'the released jti can be exchanged again');
  });

  it('answers a bug in a minter with internal_error (500), not a disguised 503, and logs it with its cause', async () => {
    const world = fakeWorld();
    world.minters.token.failWith = new TypeError('cannot read properties of undefined');
    const failure = await rejectsWith(run(world), 'internal_error');
    assert.equal(failure.status, 500);
    assert.ok(failure.cause instanceof TypeError);
    assert.deepEqual(world.errors, ['exchange failed unexpectedly']);
    const denied = world.audit.records.at(-1);
    assert.equal(denied?.phase === 'denied' && denied.code, 'internal_error');
    assert.match(String(denied?.cause), /TypeError: cannot read properties/);
    assert.deepEqual(world.replay.released, [JTI_KEY]);
  });

  it('mints nothing and answers 503 audit_unavailable when the intent record cannot be written', async () => {
    const world = fakeWorld({ failAuditPhases: ['intent'] });
    await rejectsWith(run(world), 'audit_unavailable');
    assert.equal(world.minters.token.calls + world.minters.linkerd.calls, 0, 'something was minted without an audit record');
    assert.deepEqual(world.replay.released, [JTI_KEY]);
  });

  it('returns nothing and releases the jti when the result record cannot be written', async () => {
    const world = fakeWorld({ failAuditPhases: ['result'] });
    await rejectsWith(run(world), 'audit_unavailable');
    assert.deepEqual(world.replay.released, [JTI_KEY]);
  });

  it('answers 503 audit_unavailable when even the denial cannot be recorded', async () => {
    const world = fakeWorld({ failAuditPhases: ['denied'] });
    await rejectsWith(run(world, BOTH, 'not-a-token'), 'audit_unavailable');
  });

  const refusals: { name: string; body?: string; token?: string; prepare?: (world: FakeWorld) => Promise<unknown> | void; code: string; reserved: boolean }[] = [
    { name: 'a malformed body', body: '{"grants":', code: 'invalid_request', reserved: false },
    { name: 'an unknown grant', body: '{"grants":{"aws":{}}}', code: 'invalid_request', reserved: false },
    { name: 'a token that does not verify', token: 'garbage', code: 'invalid_token', reserved: false },
    { name: 'a replayed token', prepare: (world) => run(world, TOKEN_ONLY), code: 'token_replayed', reserved: true },
    { name: 'a grant the rule does not allow', body: JSON.stringify({ grants: { google: {} } }), code: 'grant_not_allowed', reserved: false },
    { name: 'a job that is not running', prepare: (world) => void (world.facts.status = 'success'), code: 'job_not_running', reserved: false },
  ];
  for (const refusal of refusals) {
    it(`refuses ${refusal.name} with ${refusal.code}, mints nothing and writes one denied record`, async () => {
      const world = fakeWorld();
      await refusal.prepare?.(world);
      const before = world.audit.records.length;
      const mintsBefore = world.minters.token.calls + world.minters.linkerd.calls;
      await rejectsWith(run(world, refusal.body ?? BOTH, refusal.token ?? 'token:jti-1'), refusal.code);
      const written = world.audit.records.slice(before);
      assert.deepEqual(written.map((record) => `${record.phase}:${record.outcome}`), ['denied:denied']);
      assert.equal(written[0]?.phase === 'denied' && written[0].code, refusal.code);
      assert.equal(world.minters.token.calls + world.minters.linkerd.calls, mintsBefore);
      assert.equal(world.replay.reserved.has(JTI_KEY), refusal.reserved, 'a refused request must not keep the jti spent');
    });
  }

  it('asks GitLab nothing for a request no rule can match', async () => {
    const world = fakeWorld();
    await rejectsWith(run(world, JSON.stringify({ grants: { google: {} } })), 'grant_not_allowed');
    assert.equal(world.facts.calls, 0);
  });
});

describe('explain use case', () => {
  it('shows the decision, mints nothing, keeps the jti unspent and writes one explain record', async () => {
    const world = fakeWorld();
    const result = await explain(world.deps, { requestId: 'explain-1', token: 'token:jti-1', bodyText: BOTH });
    assert.equal(result.allowed, true);
    assert.equal(result.rule, 'payments-deploy');
    assert.equal(world.minters.token.calls + world.minters.linkerd.calls, 0);
    assert.equal(world.replay.reserved.size, 0);
    assert.deepEqual(phases(world), ['explain:allowed']);
  });

  it('answers a bug with internal_error and keeps its cause in the audit record', async () => {
    const world = fakeWorld();
    world.facts.failWith = new RangeError('index out of range');
    await rejectsWith(explain(world.deps, { requestId: 'explain-2', token: 'token:jti-1', bodyText: BOTH }), 'internal_error');
    const record = world.audit.records.at(-1);
    assert.equal(record?.phase, 'explain');
    assert.equal(record?.outcome, 'denied');
    assert.match(String(record?.cause), /RangeError: index out of range/);
  });

  it('keeps the sink failure as the cause of audit_unavailable', async () => {
    const world = fakeWorld({ failAuditPhases: ['explain'] });
    const failure = await rejectsWith(explain(world.deps, { requestId: 'explain-3', token: 'token:jti-1', bodyText: BOTH }), 'audit_unavailable');
    assert.ok(failure.cause instanceof Error);
  });
});
