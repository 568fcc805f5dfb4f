/**
 * The refresh use case against the in-memory fakes (test/support/fakes.ts), as usecase-exchange.test.ts does for
 * exchange: a session from an exchange refreshes what it granted, writing intent and result records that name the
 * exchange; a session that is not ours or has ended, a policy that no longer allows the job, a job that has finished
 * and a request wider than the session are each refused with one denied record, nothing minted and no jti spent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256Hex } from '../src/app/authorize.js';
import { exchange } from '../src/app/exchange.js';
import { refresh } from '../src/app/refresh.js';
import { isBrokerError, type ErrorCode } from '../src/core/errors.js';
import { compilePolicy } from '../src/core/policy/compile.js';
import type { AuditRecord } from '../src/ports.js';
import { SCENARIO } from './support/approval-scenarios.js';
import { fakeWorld, type FakeWorld } from './support/fakes.js';

const TOKEN_ONLY = JSON.stringify({ grants: { token: {} } });
const BOTH = JSON.stringify({ grants: { token: {}, linkerd: { csr: 'CSR' } } });

/** A world whose exchange `req-open` opened a session for the broker token only. */
async function openedSession(): Promise<{ world: FakeWorld; session: string; exp: number }> {
  const world = fakeWorld();
  const opened = await exchange(world.deps, { requestId: 'req-open', token: 'token:jti-1', bodyText: TOKEN_ONLY });
  assert.ok(opened.session, 'the exchange opened a session');
  return { world, session: opened.session.token, exp: opened.session.expiresAt.getTime() };
}

/** The records written after the exchange (its intent and result are the first two). */
const refreshRecords = (world: FakeWorld): AuditRecord[] => world.audit.records.slice(2);

function mintCalls(world: FakeWorld): number {
  return world.minters.token.calls + world.minters.linkerd.calls;
}

async function refusedWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const caught: unknown = await promise.then(() => assert.fail(`expected ${code}, got a result`), (err: unknown) => err);
  assert.ok(isBrokerError(caught), `expected a BrokerError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
}

/** After a refusal: exactly one denied refresh record with `code`, nothing minted since the exchange, no jti touched. */
function assertRefused(world: FakeWorld, code: ErrorCode, mintsBefore: number, expected: Partial<Record<string, unknown>>): void {
  const records = refreshRecords(world);
  assert.deepEqual(records.map((record) => `${record.event}:${record.phase}:${record.outcome}`), ['refresh:denied:denied']);
  const [denied] = records;
  assert.equal(denied?.phase === 'denied' && denied.code, code);
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(denied?.[key], value, key);
  assert.equal(mintCalls(world), mintsBefore, 'nothing was minted');
  assert.deepEqual(world.replay.released, [], 'the exchange\'s jti stays spent');
}

describe('refresh use case', () => {
  it('mints again what the session granted, auditing intent and result under the exchange\'s request id, spending no jti', async () => {
    const { world, session } = await openedSession();
    const reserved = world.replay.reserved.size;
    const factCalls = world.facts.calls;
    const result = await refresh(world.deps, { requestId: 'req-refresh', token: session, bodyText: TOKEN_ONLY });
    assert.equal(result.rule, 'payments-deploy');
    assert.equal(result.grants.token?.token, 'jwt:https://deploy.internal:req-refresh');
    assert.equal(result.grants.linkerd, undefined);
    const records = refreshRecords(world);
    assert.deepEqual(records.map((record) => `${record.event}:${record.phase}:${record.outcome}`), ['refresh:intent:pending', 'refresh:result:allowed']);
    for (const record of records) {
      assert.equal(record.requestId, 'req-refresh');
      assert.equal(record.originalRequestId, 'req-open');
      assert.equal(record.tokenSha256, sha256Hex(session));
      assert.equal(record.project_id, SCENARIO.projectId);
    }
    const [intent, outcome] = records;
    assert.deepEqual(intent?.phase === 'intent' && intent.plans, ['token']);
    assert.equal(outcome?.phase === 'result' && outcome.minted.length, 1);
    assert.ok(world.facts.calls > factCalls, 'the job was looked up again');
    assert.equal(world.replay.reserved.size, reserved, 'no jti reserved');
  });

  it('refuses a token that is not a session of this broker with invalid_token', async () => {
    const { world } = await openedSession();
    const before = mintCalls(world);
    await refusedWith(refresh(world.deps, { requestId: 'req-refresh', token: 'token:jti-1', bodyText: TOKEN_ONLY }), 'invalid_token');
    assertRefused(world, 'invalid_token', before, { detail: 'not a session token of this broker', originalRequestId: undefined, tokenSha256: sha256Hex('token:jti-1') });
  });

  it('refuses a session whose ID token has expired with token_expired', async () => {
    const { world, session, exp } = await openedSession();
    const before = mintCalls(world);
    const later = { ...world.deps, clock: { now: () => new Date(exp + 1000) } };
    await refusedWith(refresh(later, { requestId: 'req-refresh', token: session, bodyText: TOKEN_ONLY }), 'token_expired');
    assertRefused(world, 'token_expired', before, { detail: 'the session has ended (the ID token it came from has expired)' });
  });

  it('refuses with policy_denied once the policy no longer has a rule for the job, naming the session\'s rule', async () => {
    const { world, session } = await openedSession();
    const before = mintCalls(world);
    const otherProject = compilePolicy([{ source: 'later.yaml', data: { version: 1, rules: [{ name: 'payments-deploy', when: { project_id: '999' }, grant: { token: { audiences: ['https://deploy.internal'] } } }] } }]);
    const reloaded = { ...world.deps, policy: () => otherProject };
    await refusedWith(refresh(reloaded, { requestId: 'req-refresh', token: session, bodyText: TOKEN_ONLY }), 'policy_denied');
    assertRefused(world, 'policy_denied', before, { originalRequestId: 'req-open', rule: 'payments-deploy' });
  });

  it('refuses with job_not_running once the job has finished', async () => {
    const { world, session } = await openedSession();
    const before = mintCalls(world);
    world.facts.status = 'success';
    await refusedWith(refresh(world.deps, { requestId: 'req-refresh', token: session, bodyText: TOKEN_ONLY }), 'job_not_running');
    assertRefused(world, 'job_not_running', before, { originalRequestId: 'req-open' });
  });

  it('refuses a grant the exchange did not give with grant_not_allowed: a refresh never widens the session', async () => {
    const { world, session } = await openedSession();
    const before = mintCalls(world);
    await refusedWith(refresh(world.deps, { requestId: 'req-refresh', token: session, bodyText: BOTH }), 'grant_not_allowed');
    assertRefused(world, 'grant_not_allowed', before, { originalRequestId: 'req-open', grantsRequested: ['linkerd', 'token'] });
  });
});
