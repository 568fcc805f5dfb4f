/**
 * Fail closed: job liveness, GitLab API faults, JWKS faults and rotation, an unwritable audit log, readiness, and
 * policy reloads that keep the last good policy.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { generateRsaSigningKey } from '../src/dev/token-factory.js';
import { assertDenied } from './support/assertions.js';
import { startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

describe('job liveness through the GitLab jobs API', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    h.gitlab.faults.jobs = undefined;
  });

  for (const status of ['success', 'failed', 'canceled', 'pending', 'manual']) {
    it(`denies a job whose status is ${status} with job_not_running`, async () => {
      h.gitlab.setJob('20', '4000', status);
      const token = await h.gitlab.token(AUDIENCE, { job_id: '4000' });
      await assertDenied(h, await h.exchange(token), 403, 'job_not_running', token);
    });
  }

  it('looks the job up in job_project_id', async () => {
    h.gitlab.setJob('20', '4001', 'running');
    assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE, { job_id: '4001' }))).status, 200);
  });

  const faults: Array<{ name: string; apply: (g: StandInGitLab) => void }> = [
    { name: 'the API closes the connection', apply: (g) => { g.faults.jobs = 'down'; } },
    { name: 'the API answers 500', apply: (g) => { g.faults.jobs = 500; } },
    { name: 'the API answers 429 on every retry', apply: (g) => { g.faults.jobs = 429; } },
    { name: 'the API answers an HTML error page', apply: (g) => { g.faults.jobs = 'html'; } },
    { name: 'the API is slower than the deadline', apply: (g) => { g.faults.jobsDelayMs = 2500; } },
    { name: 'the job does not exist (404)', apply: (g) => { g.faults.jobs = 404; } },
  ];
  for (const fault of faults) {
    it(`fails closed with 503 upstream_unavailable when ${fault.name}`, async () => {
      fault.apply(h.gitlab);
      try {
        const token = await h.gitlab.token(AUDIENCE);
        const result = await h.exchange(token);
        await assertDenied(h, result, 503, 'upstream_unavailable', token);
        assert.ok(result.headers.get('retry-after'), 'a 503 carries Retry-After');
      } finally {
        h.gitlab.faults.jobs = undefined;
        h.gitlab.faults.jobsDelayMs = undefined;
      }
    });
  }
});

describe('issuer keys', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('floods of unknown kids cause at most one extra JWKS fetch (cooldown)', async () => {
    assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200);
    const fetchesBefore = h.gitlab.hitCount('/oauth/discovery/keys');
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, index) => {
        const key = await generateRsaSigningKey(`unknown-${index}`);
        return h.exchange(await h.gitlab.token(AUDIENCE, {}, { key }));
      }),
    );
    assert.ok(results.every((result) => result.status === 401 && result.body.code === 'invalid_token'));
    assert.ok(h.gitlab.hitCount('/oauth/discovery/keys') - fetchesBefore <= 1, `JWKS fetched ${h.gitlab.hitCount('/oauth/discovery/keys') - fetchesBefore} times`);
  });

  it('picks up a key the issuer rotated in once the cooldown allows', async () => {
    const gitlab = await startGitLab();
    const rotating = await startHarness({ gitlab, overrides: { jwksCooldownMs: 0 } });
    try {
      assert.equal((await rotating.exchange(await gitlab.token(AUDIENCE))).status, 200);
      const next = await generateRsaSigningKey('standin-key-2');
      gitlab.publish(next);
      const result = await rotating.exchange(await gitlab.token(AUDIENCE, {}, { key: next }));
      assert.equal(result.status, 200, result.text);
    } finally {
      await rotating.close();
      await gitlab.close();
    }
  });
});

describe('an issuer that is down', () => {
  it('answers 503 upstream_unavailable and reports not ready, then recovers', async () => {
    const gitlab = await startGitLab();
    gitlab.faults.jwksStatus = 503;
    const h = await startHarness({ gitlab });
    try {
      const token = await gitlab.token(AUDIENCE);
      await assertDenied(h, await h.exchange(token), 503, 'upstream_unavailable', token);
      const ready = await h.call('/readyz');
      assert.equal(ready.status, 503);
      assert.equal((ready.body.checks as Record<string, boolean>).issuers, false);
      gitlab.faults.jwksStatus = undefined;
      assert.equal((await h.call('/readyz')).status, 200);
      assert.equal((await h.exchange(token)).status, 200, 'the jti of a failed attempt stays usable');
    } finally {
      await h.close();
      await gitlab.close();
    }
  });
});

describe('the audit log', () => {
  it('returns nothing (503 audit_unavailable) when the audit record cannot be written', async () => {
    const h = await startHarness({ auditFile: '/dev/full' });
    try {
      const token = await h.gitlab.token(AUDIENCE);
      const result = await h.exchange(token);
      assert.equal(result.status, 503, result.text);
      assert.equal(result.body.code, 'audit_unavailable');
      assert.equal(result.body.grants, undefined);
      assert.equal((await h.call('/readyz')).status, 503);
    } finally {
      await h.close();
    }
  });
});

describe('a grant with no minter configured', () => {
  const googlePolicy = `version: 1
rules:
  - name: payments-spanner
    when: { project_id: "20" }
    grant:
      google: { serviceAccount: spanner-migrator@acme-prod.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/spanner.admin] }
`;

  it('refuses to start, naming the rule, the grant and the missing config section', async () => {
    const gitlab = await startGitLab();
    try {
      await assert.rejects(startHarness({ gitlab, policy: googlePolicy }), (err: Error) => {
        assert.equal(err.name, 'ConfigError');
        assert.match(err.message, /policy rule payments-spanner grants google, but the config has no google section/);
        return true;
      });
    } finally {
      await gitlab.close();
    }
  });

  it('refuses a reload that adds such a grant and keeps the last good policy', async () => {
    const h = await startHarness();
    try {
      await writeFile(join(h.dir, 'policy', '10-core.yaml'), googlePolicy);
      assert.equal(await h.broker.policy.reload(), false);
      assert.ok(h.opsLog.some((line) => line.includes('payments-spanner grants google')), h.opsLog.join('\n'));
      assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200);
    } finally {
      await h.close();
    }
  });

  it('refuses a google section whose IAM Credentials URL is plain http to another host, or has a path', async () => {
    const gitlab = await startGitLab();
    try {
      await assert.rejects(startHarness({ gitlab, configExtra: 'google: { iamCredentialsUrl: "http://iamcredentials.example.com" }' }), /google\.iamCredentialsUrl/);
      await assert.rejects(startHarness({ gitlab, configExtra: 'google: { iamCredentialsUrl: "https://iamcredentials.googleapis.com/v1" }' }), /bare origin/);
    } finally {
      await gitlab.close();
    }
  });
});

describe('replay store configuration', () => {
  it('refuses to start when the Redis password file cannot be read, instead of connecting without it', async () => {
    const gitlab = await startGitLab();
    try {
      await assert.rejects(startHarness({ gitlab, configExtra: 'replay: { store: redis, url: "redis://broker@127.0.0.1:1", passwordFile: no-such-file }' }), /config: replay: .*no-such-file/);
    } finally {
      await gitlab.close();
    }
  });
});

describe('policy reloads', () => {
  it('keeps the last good policy when a reload fails, and takes a good one', async () => {
    const h = await startHarness();
    try {
      const policyFile = join(h.dir, 'policy', '10-core.yaml');
      await writeFile(policyFile, 'version: 1\nrules:\n  - name: Bad Name\n    when: {}\n    grant: {}\n');
      assert.equal(await h.broker.policy.reload(), false);
      assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200, 'the last good policy still serves');
      assert.ok(h.opsLog.some((line) => line.includes('keeping the last good policy')));
      await writeFile(policyFile, 'version: 1\nrules:\n  - name: only-staging\n    when: { environment: staging }\n    grant: { token: { audiences: [x] } }\n');
      assert.equal(await h.broker.policy.reload(), true);
      const token = await h.gitlab.token(AUDIENCE);
      await assertDenied(h, await h.exchange(token), 403, 'policy_denied', token);
    } finally {
      await h.close();
    }
  });
});

describe('per-project rate limit', () => {
  it('answers 429 rate_limited with Retry-After once a project spends its budget, without touching other projects', async () => {
    const h = await startHarness({ requestsPerMinutePerProject: 3 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200);
      const token = await h.gitlab.token(AUDIENCE);
      const limited = await h.exchange(token);
      await assertDenied(h, limited, 429, 'rate_limited', token);
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
      assert.equal((await h.exchange(token)).status, 429, 'a limited request does not spend the jti either');
      const other = await h.exchange(await h.gitlab.token(AUDIENCE, { project_id: '77' }), { token: {} });
      assert.equal(other.status, 200, other.text);
      const explained = await h.call('/v1/explain', { token: await h.gitlab.token(AUDIENCE), body: { grants: { token: {} } } });
      assert.equal(explained.status, 429, 'explain spends the same budget: it can make GitLab calls');
    } finally {
      await h.close();
    }
  });
});

describe('signing key rotation on SIGHUP', () => {
  it('signs with the new first key and keeps publishing the retired one', async () => {
    const h = await startHarness();
    try {
      const before = (await h.call('/.well-known/jwks.json')).body as { keys: Array<{ kid: string }> };
      const next = await generateSigningJwks();
      await writeFile(join(h.dir, 'signing.jwks.json'), JSON.stringify(next));
      process.kill(process.pid, 'SIGHUP');
      let kids: string[] = [];
      for (let attempt = 0; attempt < 50; attempt++) {
        kids = ((await h.call('/.well-known/jwks.json')).body as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
        if (kids[0] === next.keys[0]?.kid) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(kids, [next.keys[0]?.kid, before.keys[0]?.kid]);
      const minted = await h.exchange(await h.gitlab.token(AUDIENCE));
      const token = (minted.body.grants as { token: { token: string } }).token.token;
      assert.equal(JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()).kid, next.keys[0]?.kid);
    } finally {
      await h.close();
    }
  });
});
