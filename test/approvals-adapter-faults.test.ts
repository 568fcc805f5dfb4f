/** The approvals adapter fails closed on every API fault, coalesces identical lookups and caches only memberships. */
import * as assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createGitLabClient, type GitLabClient, type GitLabClientOptions } from '../src/adapters/gitlab/client.js';
import { isBrokerError } from '../src/core/errors.js';
import type { FactNeeds } from '../src/core/policy/evaluate.js';
import { GROUPS, SCENARIO, fullyApproved, scenarioPrincipal } from './support/approval-scenarios.js';
import { startApprovalsServer, type ApprovalsServer } from './support/approvals-server.js';

const BOTH: FactNeeds = { jobStatus: false, deploymentApprovals: true, mergeRequestApprovals: true, groups: [GROUPS.release, GROUPS.reviewers] };
// Faults that answer at once get a generous deadline (a loaded CI box must still reach them); slow ones a short one.
const GENEROUS_MS = 3_000;
const SHORT_MS = 300;

const clients: GitLabClient[] = [];
after(() => Promise.all(clients.map((client) => client.close())));

function client(options: Partial<GitLabClientOptions> = {}): GitLabClient {
  const created = createGitLabClient({ token: async () => SCENARIO.token, requestTimeoutMs: GENEROUS_MS, ...options });
  clients.push(created);
  return created;
}

describe('approvals adapter faults', () => {
  let server: ApprovalsServer;
  before(async () => {
    server = await startApprovalsServer(fullyApproved());
  });
  after(() => server.close());
  beforeEach(() => {
    server.api.setData(fullyApproved());
    Object.assign(server.api.faults, { mode: 'none', delayMs: 0, latencyMs: 0, only: undefined });
  });

  const faults = [
    { name: 'the API is down (socket closed)', set: { mode: 'down' }, detail: /unreachable/ },
    { name: 'the API is slow past the deadline', set: { delayMs: 5_000 }, detail: /timed out/, timeoutMs: SHORT_MS },
    { name: 'the API answers 429', set: { mode: '429' }, detail: /answered 429/, retryAfter: 7 },
    { name: 'the API answers an HTML page', set: { mode: 'html' }, detail: /not JSON/ },
    { name: 'the API answers 500', set: { mode: '500' }, detail: /answered 500/ },
    { name: 'the API redirects to another host (the token is never sent after it)', set: { mode: 'redirect' }, detail: /unreachable/ },
    { name: 'only group membership lookups fail', set: { mode: '500', only: /^\/groups\// }, detail: /answered 500/ },
    { name: 'only the MR versions are slow', set: { delayMs: 5_000, only: /\/versions$/ }, detail: /timed out/, timeoutMs: SHORT_MS },
  ] as const;

  for (const fault of faults) {
    it(`${fault.name} → upstream_unavailable, never approved`, async () => {
      Object.assign(server.api.faults, fault.set);
      const timeoutMs = 'timeoutMs' in fault ? fault.timeoutMs : GENEROUS_MS;
      const approvals = client();
      const started = performance.now();
      const error: unknown = await approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, AbortSignal.timeout(timeoutMs)).then(
        () => assert.fail('resolved'),
        (reason: unknown) => reason,
      );
      assert.ok(isBrokerError(error), String(error));
      assert.equal(error.code, 'upstream_unavailable');
      assert.match(error.detail, fault.detail);
      if ('retryAfter' in fault) assert.equal(error.retryAfter, fault.retryAfter);
      assert.ok(performance.now() - started < timeoutMs + 1_000, 'the deadline bounds the lookup');
      assert.ok(!inspect(error, { depth: 20, showHidden: true }).includes(SCENARIO.token), 'the API token is not in the error');
    });
  }

  it('a wrong API token → upstream_unavailable, and the token is not in the error', async () => {
    const approvals = client({ token: async () => 'glpat-wrong-token' });
    const error: unknown = await approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, AbortSignal.timeout(GENEROUS_MS)).catch((reason: unknown) => reason);
    assert.ok(isBrokerError(error));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /answered 401/);
    assert.ok(!inspect(error, { depth: 20, showHidden: true }).includes('glpat-wrong-token'));
  });

  it('the caller aborting ends the lookup at once', async () => {
    server.api.faults.delayMs = 5_000;
    const approvals = client({ requestTimeoutMs: 10_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    await assert.rejects(approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, controller.signal), { code: 'upstream_unavailable' });
    assert.ok(performance.now() - started < 2_000);
  });
});

describe('approvals adapter coalescing and caching', () => {
  let server: ApprovalsServer;
  before(async () => {
    server = await startApprovalsServer(fullyApproved());
    server.api.faults.latencyMs = 20; // long enough for two lookups to overlap
  });
  after(() => server.close());

  const duplicates = (calls: readonly string[]): string[] => calls.filter((call, index) => calls.indexOf(call) !== index);

  it('two concurrent identical lookups cause one API call per resource', async () => {
    const approvals = client();
    const before = server.api.calls.length;
    const signal = AbortSignal.timeout(GENEROUS_MS);
    const [first, second] = await Promise.all([
      approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, signal),
      approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, signal),
    ]);
    const calls = server.api.calls.slice(before);
    assert.deepEqual(duplicates(calls), []);
    assert.ok(calls.length > 5);
    assert.deepEqual(first.mergeRequest?.approvals.map((entry) => entry.user.username), second.mergeRequest?.approvals.map((entry) => entry.user.username));
  });

  it('one caller giving up does not fail another caller sharing the same lookups', async () => {
    const approvals = client();
    const impatient = new AbortController();
    const gaveUp = approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, impatient.signal);
    const patient = approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, AbortSignal.timeout(GENEROUS_MS));
    setTimeout(() => impatient.abort(), 5);
    await assert.rejects(gaveUp, { code: 'upstream_unavailable' });
    assert.equal((await patient).deployment?.deploymentId, 900);
  });

  it('caches group membership and profiles per (group, user) until the TTL passes, but refetches approvals', async () => {
    let now = 1_000_000;
    const approvals = client({ membershipTtlMs: 30_000, clock: () => now });
    const run = async (): Promise<string[]> => {
      const before = server.api.calls.length;
      await approvals.approvals(server.issuer, scenarioPrincipal(), BOTH, AbortSignal.timeout(GENEROUS_MS));
      return server.api.calls.slice(before);
    };
    const cached = (calls: string[]): number => calls.filter((call) => call.startsWith('GET /groups/') || call.startsWith('GET /users/')).length;
    const first = await run();
    assert.equal(cached(first), 3 * 2 + 3, 'bob, carol, dave × two groups, plus three profiles');
    now += 10_000;
    const second = await run();
    assert.equal(cached(second), 0);
    assert.ok(second.some((call) => call.includes('/merge_requests/42/approvals')), 'approvals are never cached');
    assert.ok(second.some((call) => call.includes('/deployments/900')), 'deployment approvals are never cached');
    now += 30_000;
    assert.equal(cached(await run()), 9);
  });
});
