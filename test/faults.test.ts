/**
 * Fault injection with every grant kind requested at once (google, linkerd, token): each fault gets its coded answer,
 * the response carries no credential, Google's stand-in sees no mint call the fault should have prevented, and the
 * audit log holds the refusal and no result. What other suites already prove is not repeated here (GitLab 500, HTML,
 * closed socket and 404 in exchange-faults.test.ts; Google 500s and 503/429 then success in exchange-google.test.ts;
 * Redis killed between requests in replicas.test.ts); this adds connection refused, GitLab's Retry-After, Google
 * answering 429 to the end, and an audit file that is full or cannot be reopened after rotation.
 */
import assert from 'node:assert/strict';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import { assertDenied, waitForAudit } from './support/assertions.js';
import { startGoogleBroker, type GoogleBroker } from './support/google-broker.js';
import { startHarness, type CallResult, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';
import { freePort } from './support/free-port.js';

const allGrants = () => ({ google: {}, linkerd: { csr: generateKeyAndRequest().csrPem }, token: {} });

/** No access token, certificate or JWT anywhere in the answer. */
function assertNoCredential(result: CallResult): void {
  assert.equal(result.body.grants, undefined, 'a refusal returns no grants');
  assert.doesNotMatch(result.text, /ya29\.|BEGIN CERTIFICATE|eyJ[\w-]+\.eyJ/, 'a credential in a refusal');
}

/** The refusal's answer and audit record, nothing minted, and Google called `googleCalls` times (min–max) for it. */
async function assertRefused(gb: GoogleBroker, send: () => Promise<CallResult>, expected: { status: number; code: string; googleCalls?: [number, number] }, idToken: string): Promise<CallResult> {
  const callsBefore = gb.google.calls.generateAccessToken;
  const result = await send();
  await assertDenied(gb.h, result, expected.status, expected.code, idToken);
  assertNoCredential(result);
  const [min, max] = expected.googleCalls ?? [0, 0];
  const calls = gb.google.calls.generateAccessToken - callsBefore;
  assert.ok(calls >= min && calls <= max, `${calls} Google mint calls, expected ${min}–${max}`);
  const phases = (await waitForAudit(gb.h, result.body.requestId as string)).map((record) => record.phase);
  assert.ok(!phases.includes('result'), `audit phases ${phases.join(', ')}`);
  return result;
}

async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

describe('GitLab API faults, with every grant kind requested', () => {
  let gb: GoogleBroker;
  before(async () => {
    gb = await startGoogleBroker();
  });
  after(() => gb.close());
  beforeEach(() => {
    gb.resetFaults();
    gb.h.gitlab.faults.jobs = undefined;
    gb.h.gitlab.faults.jobsDelayMs = undefined;
  });

  it('GitLab answering 429 with Retry-After: 503 upstream_unavailable, passing on a Retry-After at least as long', async () => {
    gb.h.gitlab.faults.jobs = 429;
    const idToken = await gb.h.gitlab.token(AUDIENCE);
    const result = await assertRefused(gb, () => gb.h.exchange(idToken, allGrants()), { status: 503, code: 'upstream_unavailable' }, idToken);
    assert.ok(Number(result.headers.get('retry-after')) >= 7, `Retry-After ${result.headers.get('retry-after')} (GitLab asked for 7)`);
    gb.h.gitlab.faults.jobs = undefined;
    assert.equal((await gb.h.exchange(idToken, allGrants())).status, 200, 'the jti of the refused request stays usable');
  });

  it('GitLab slower than limits.factTimeout: 503 upstream_unavailable at the deadline, nothing minted', async () => {
    gb.h.gitlab.faults.jobsDelayMs = 10_000;
    const idToken = await gb.h.gitlab.token(AUDIENCE);
    const started = Date.now();
    await assertRefused(gb, () => gb.h.exchange(idToken, allGrants()), { status: 503, code: 'upstream_unavailable' }, idToken);
    // The deadline is 2 s; the bound is loose for a loaded machine, and still well before GitLab's 10 s answer.
    assert.ok(Date.now() - started < 8_000, `answered after ${Date.now() - started} ms, not at the 2 s deadline`);
  });
});

describe('a GitLab API that refuses connections', () => {
  let gb: GoogleBroker;
  before(async () => {
    // Nothing listens on the API's port; the issuer (discovery, keys) is still the stand-in.
    // A 20 s deadline, so an answer well before it shows the refusal was not waited out.
    gb = await startGoogleBroker({ factTimeout: '20s', issuerExtra: `apiUrl: http://127.0.0.1:${await freePort()}/api/v4` });
  });
  after(() => gb.close());

  it('answers 503 upstream_unavailable with Retry-After at once, and mints nothing', async () => {
    const idToken = await gb.h.gitlab.token(AUDIENCE);
    const started = Date.now();
    const result = await assertRefused(gb, () => gb.h.exchange(idToken, allGrants()), { status: 503, code: 'upstream_unavailable' }, idToken);
    assert.ok(Number(result.headers.get('retry-after')) > 0, 'Retry-After is set');
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms: a refused connection should not wait for the deadline`);
  });
});

describe('Google IAM Credentials failing on every attempt, beside linkerd and token grants', () => {
  let gb: GoogleBroker;
  before(async () => {
    gb = await startGoogleBroker();
  });
  after(() => gb.close());
  beforeEach(() => gb.resetFaults());

  for (const status of [429, 500]) {
    it(`${status} on every attempt: retried, then 503 upstream_unavailable, and neither the certificate nor the token is returned`, async () => {
      gb.google.faults.generateAccessToken.push(status, status, status, status);
      const idToken = await gb.h.gitlab.token(AUDIENCE);
      // Four attempts at most; the jittered pauses may reach the 2 s deadline after two or three.
      const result = await assertRefused(gb, () => gb.h.exchange(idToken, allGrants()), { status: 503, code: 'upstream_unavailable', googleCalls: [2, 4] }, idToken);
      assert.match(String(result.body.detail), /kept failing|did not succeed before the deadline/);
      gb.resetFaults();
      assert.equal((await gb.h.exchange(idToken, allGrants())).status, 200, 'the jti stays usable once Google answers');
    });
  }
});

describe('an audit log that cannot be written', () => {
  it('a path that cannot be opened at start: the broker refuses to start, naming audit.file', async () => {
    const gb = await startGoogleBroker();
    try {
      await assert.rejects(startHarness({ gitlab: gb.h.gitlab, auditFile: gb.h.dir }), (err: Error) => {
        assert.equal(err.name, 'ConfigError');
        assert.match(err.message, /^config: audit\.file: cannot open .* for appending: EISDIR/);
        return true;
      });
    } finally {
      await gb.close();
    }
  });

  it('a full disk: 503 audit_unavailable before anything is minted (Google never called), readiness false', async () => {
    const gb = await startGoogleBroker({ auditFile: '/dev/full' });
    try {
      const callsBefore = gb.google.calls.generateAccessToken;
      const result = await gb.h.exchange(await gb.h.gitlab.token(AUDIENCE), allGrants());
      assert.equal(result.status, 503, result.text);
      assert.equal(result.body.code, 'audit_unavailable');
      assertNoCredential(result);
      assert.equal(gb.google.calls.generateAccessToken, callsBefore, 'no intent record, no mint');
      const ready = await gb.h.call('/readyz');
      assert.equal(ready.status, 503);
      assert.equal((ready.body.checks as Record<string, boolean>).audit, false);
    } finally {
      await gb.close();
    }
  });

  it('rotated to a path that cannot be opened: 503 audit_unavailable, nothing minted, and recovery once it can', async () => {
    const gb = await startGoogleBroker();
    const h: Harness = gb.h;
    const auditFile = join(h.dir, 'audit.log');
    try {
      assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE), allGrants())).status, 200);
      // The rotator moved the file away, and what is at the path now cannot be appended to (even by root).
      await rename(auditFile, `${auditFile}.1`);
      await mkdir(auditFile);
      process.kill(process.pid, 'SIGHUP');
      await eventually(async () => h.opsLog.some((line) => line.includes('audit file could not be reopened')), 5_000, 'the failed reopen is logged');

      const callsBefore = gb.google.calls.generateAccessToken;
      const idToken = await h.gitlab.token(AUDIENCE);
      const refused = await h.exchange(idToken, allGrants());
      assert.equal(refused.status, 503, refused.text);
      assert.equal(refused.body.code, 'audit_unavailable');
      assertNoCredential(refused);
      assert.equal(gb.google.calls.generateAccessToken, callsBefore, 'Google was called without an audit record');
      assert.equal((await h.call('/readyz')).status, 503);

      await rm(auditFile, { recursive: true });
      await eventually(async () => (await h.call('/readyz')).status === 200, 5_000, 'readiness returns once the path can be opened');
      const served = await h.exchange(idToken, allGrants());
      assert.equal(served.status, 200, served.text);
      const records = await waitForAudit(h, served.body.requestId as string);
      assert.deepEqual(records.map((record) => record.phase), ['intent', 'result'], 'written to the new file at the configured path');
    } finally {
      await gb.close();
    }
  });
});
