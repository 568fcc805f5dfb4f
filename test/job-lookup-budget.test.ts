/**
 * What one job token can make the broker spend on GitLab job lookups. A denied exchange releases its jti and explain
 * never spends it, so the same token can come back again and again: its first job lookup is free (one exchange per
 * token is never throttled, however busy the project), every further one within the lookup window is charged to the
 * project's budget of GitLab lookups (`limits.gitlabLookupsPerProject`), like an approval lookup.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createGitLabClient, type GitLabClient, type GitLabClientOptions } from '../src/adapters/gitlab/client.js';
import { isBrokerError, type BrokerError } from '../src/core/errors.js';
import type { Clock, TrustedIssuer } from '../src/ports.js';
import { assertDenied } from './support/assertions.js';
import { scenarioPrincipal } from './support/approval-scenarios.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const WAIT_MS = 3_000;
const JOB_LOOKUPS = '/api/v4/projects/:n/jobs';

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  const error: unknown = await promise.then(() => assert.fail('resolved'), (reason: unknown) => reason);
  assert.ok(isBrokerError(error), String(error));
  return error;
}

describe('GitLab client: a token\'s repeated job lookups spend the project\'s lookup budget', () => {
  let gitlab: StandInGitLab;
  let issuer: TrustedIssuer;
  const clients: GitLabClient[] = [];
  before(async () => {
    gitlab = await startGitLab();
    gitlab.setJob('20', '302', 'running');
    gitlab.setJob('21', '302', 'running');
    issuer = { issuer: gitlab.issuer, audience: AUDIENCE, apiUrl: gitlab.apiUrl, maxTokenAgeSeconds: 7200 };
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await gitlab.close();
  });

  function client(options: Partial<GitLabClientOptions>): (jti: string, projectId?: string) => Promise<string | undefined> {
    const created = createGitLabClient({ token: async () => API_TOKEN, requestTimeoutMs: WAIT_MS, ...options });
    clients.push(created);
    return (jti, projectId = '20') => created.jobStatus(issuer, scenarioPrincipal({ jti, project_id: projectId, job_project_id: projectId }), AbortSignal.timeout(WAIT_MS));
  }

  it('never charges a token\'s first lookup, charges the rest, and refuses them with rate_limited and no call once spent', async () => {
    let now = 1_000_000;
    const lookup = client({ lookupBudget: { perProject: 2, windowMs: 60_000 }, clock: () => now });
    for (let n = 0; n < 10; n++) assert.equal(await lookup(`distinct-${n}`), 'running', `distinct token ${n}`);
    assert.equal(await lookup('again'), 'running', 'a first lookup');
    assert.equal(await lookup('again'), 'running', 'the first charged lookup');
    assert.equal(await lookup('again'), 'running', 'the second charged lookup');
    const calls = gitlab.hitCount(JOB_LOOKUPS);
    const refused = await failure(lookup('again'));
    assert.equal(refused.code, 'rate_limited');
    assert.equal(refused.retryAfter, 60);
    assert.equal((await failure(lookup('distinct-0'))).code, 'rate_limited', 'any repeated token of the project: one budget');
    assert.equal(gitlab.hitCount(JOB_LOOKUPS), calls, 'a refused lookup makes no call');
    assert.equal(await lookup('fresh'), 'running', 'a new token of the spent project still gets its first lookup');
    assert.equal(await lookup('again', '21'), 'running', 'another project has its own budget');
    now += 30_000;
    assert.equal((await failure(lookup('again'))).code, 'rate_limited', 'still within the window by the injected clock');
    now += 30_000;
    assert.equal(await lookup('again'), 'running', 'a new window: the token is new again');
    assert.equal(await lookup('again'), 'running', 'the new window\'s first charged lookup');
    assert.equal(await lookup('again'), 'running', 'the new window\'s second charged lookup');
    assert.equal((await failure(lookup('again'))).code, 'rate_limited', 'and no more');
  });

  it('does not bound repeated lookups when gitlabLookupsPerProject is 0', async () => {
    const lookup = client({ lookupBudget: { perProject: 0, windowMs: 60_000 } });
    for (let n = 0; n < 5; n++) assert.equal(await lookup('unbounded'), 'running');
  });
});

describe('the broker: one job token cannot drive unlimited job lookups', () => {
  it('never refuses many distinct tokens of one project each exchanged once, even past the default budget of 60', async () => {
    const h = await startHarness();
    try {
      const before = h.gitlab.hitCount(JOB_LOOKUPS);
      for (let n = 0; n < 65; n++) {
        const result = await h.exchange(await h.gitlab.token(AUDIENCE));
        assert.equal(result.status, 200, `token ${n}: ${result.text}`);
      }
      assert.equal(h.gitlab.hitCount(JOB_LOOKUPS) - before, 65, 'one lookup each');
      // None of them was charged: a token denied again and again still has the whole budget of 60 after its first.
      h.gitlab.setJob('20', '4100', 'success');
      const denied = await h.gitlab.token(AUDIENCE, { job_id: '4100' });
      for (let n = 0; n <= 60; n++) assert.equal((await h.exchange(denied)).body.code, 'job_not_running', `denied exchange ${n}`);
      await assertDenied(h, await h.exchange(denied), 429, 'rate_limited', denied);
    } finally {
      await h.close();
    }
  });

  it('refuses a token denied again and again with 429 rate_limited past the budget, and asks GitLab nothing more', async () => {
    const h = await startHarness({ limits: 'gitlabLookupsPerProject: 3' });
    try {
      h.gitlab.setJob('20', '4101', 'success');
      const token = await h.gitlab.token(AUDIENCE, { job_id: '4101' });
      for (let n = 0; n < 4; n++) await assertDenied(h, await h.exchange(token), 403, 'job_not_running', token);
      const before = h.gitlab.hitCount(JOB_LOOKUPS);
      const limited = await h.exchange(token);
      await assertDenied(h, limited, 429, 'rate_limited', token);
      assert.ok(Number(limited.headers.get('retry-after')) >= 1, 'Retry-After');
      assert.equal((await h.exchange(token)).status, 429);
      assert.equal(h.gitlab.hitCount(JOB_LOOKUPS), before, 'no job lookup once the budget is spent');
      assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200, 'a fresh token of the project is still exchanged');
    } finally {
      await h.close();
    }
  });

  it('charges explains of one token past the explain facts cache, by the broker\'s clock, until a new window frees the budget', async () => {
    let offset = 0;
    const clock: Clock = { now: () => new Date(Date.now() + offset) };
    const h = await startHarness({ limits: 'gitlabLookupsPerProject: 2, gitlabLookupWindow: 2m', overrides: { clock } });
    try {
      const token = await h.gitlab.token(AUDIENCE);
      const explain = () => h.call('/v1/explain', { token, body: { grants: { token: {} } } });
      const lookups = h.gitlab.hitCount(JOB_LOOKUPS);
      for (let n = 0; n < 3; n++) {
        const explained = await explain();
        assert.equal(explained.status, 200, explained.text);
        offset += 16_000; // past the explain facts cache (15 s): the next explain looks again
      }
      assert.equal(h.gitlab.hitCount(JOB_LOOKUPS) - lookups, 3, 'one free lookup and two charged');
      const limited = await explain();
      await assertDenied(h, limited, 429, 'rate_limited', token);
      assert.equal(h.gitlab.hitCount(JOB_LOOKUPS) - lookups, 3, 'no job lookup once the budget is spent');
      offset += 120_000;
      assert.equal((await explain()).status, 200, 'a new window by the broker\'s clock: the token is new again');
      offset += 16_000;
      assert.equal((await explain()).status, 200, 'and the project has a fresh budget to charge');
      assert.equal(h.gitlab.hitCount(JOB_LOOKUPS) - lookups, 5);
    } finally {
      await h.close();
    }
  });
});
