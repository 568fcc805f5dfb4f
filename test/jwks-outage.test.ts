/**
 * The issuer's key set (JWKS) down, by connection refused and by HTTP 500, against the stand-in GitLab and a real
 * broker whose clock the test moves (no sleeping): cached keys keep verifying for `jwksOutageWindow` past their
 * 10-minute freshness, then 503 upstream_unavailable, never 401; a kid not in the cached set is 503 while the issuer
 * cannot be asked; a key rotated in during the outage is picked up once the issuer answers again and the cooldown allows.
 * Every refusal mints nothing and leaves an audit record; readiness follows the window.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { generateRsaSigningKey, type SigningKey } from '../src/dev/token-factory.js';
import type { Clock } from '../src/ports.js';
import { assertDenied } from './support/assertions.js';
import { startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const MINUTE = 60_000;
/** The verifier's cache lifetime (jwksCacheMaxAgeMs default) and the harness's cooldown. */
const CACHE_MAX_AGE = 10 * MINUTE;
const COOLDOWN = 30_000;
const WINDOW = 5 * MINUTE;
const KEYS_PATH = '/oauth/discovery/keys';

/** No GitLab API call: only the key set is under test. */
const POLICY = `version: 1
rules:
  - name: deploy
    when: { project_id: "20" }
    require: { jobRunning: false }
    grant: { token: { audiences: [https://deploy.internal] } }
`;

interface MovableClock extends Clock {
  advance(ms: number): void;
}

function movableClock(): MovableClock {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (ms) => void (offset += ms) };
}

const outages = [
  { name: 'refuses connections', down: (g: StandInGitLab) => g.stopListening(), up: (g: StandInGitLab) => g.listenAgain() },
  { name: 'answers 500', down: async (g: StandInGitLab) => void (g.faults.jwksStatus = 500), up: async (g: StandInGitLab) => void (g.faults.jwksStatus = undefined) },
];

for (const outage of outages) {
  describe(`an issuer whose key set ${outage.name}`, () => {
    let gitlab: StandInGitLab;
    let h: Harness;
    let clock: MovableClock;
    let isDown = false;

    /** A token valid at the broker's (moved) time, signed by the issuer's key or `key`. */
    const token = (key?: SigningKey): Promise<string> => {
      const iat = Math.floor(clock.now().getTime() / 1000);
      return gitlab.token(AUDIENCE, { iat, nbf: iat - 5, exp: iat + 3600 }, key ? { key } : {});
    };
    const exchangeOk = async (what: string, key?: SigningKey): Promise<void> => {
      const result = await h.exchange(await token(key));
      assert.equal(result.status, 200, `${what}: ${result.text}`);
      assert.ok(result.body.grants, `${what}: minted`);
    };
    const refused = async (status: number, code: string, key?: SigningKey): Promise<void> => {
      const sent = await token(key);
      const result = await h.exchange(sent);
      await assertDenied(h, result, status, code, sent);
      if (status === 503) assert.ok(Number(result.headers.get('retry-after')) >= 1, 'a 503 carries Retry-After');
    };
    const readiness = async (): Promise<boolean | undefined> => ((await h.call('/readyz')).body.checks as Record<string, boolean> | undefined)?.issuers;
    const goDown = async (): Promise<void> => {
      await outage.down(gitlab);
      isDown = true;
    };
    const comeBack = async (): Promise<void> => {
      await outage.up(gitlab);
      isDown = false;
    };

    beforeEach(async () => {
      gitlab = await startGitLab();
      clock = movableClock();
      h = await startHarness({ gitlab, policy: POLICY, issuerExtra: 'jwksOutageWindow: 5m', overrides: { clock, jwksCooldownMs: COOLDOWN } });
      await exchangeOk('keys loaded while the issuer answers');
    });
    afterEach(async () => {
      if (isDown) await comeBack();
      await h.close();
      await gitlab.close();
    });

    it('verifies with the cached keys within the outage window, then answers 503 (not 401) beyond it, and recovers', async () => {
      await goDown();
      clock.advance(CACHE_MAX_AGE + MINUTE);
      await exchangeOk('stale keys within the window');
      assert.equal(await readiness(), true, 'ready while the cached keys still verify');
      assert.ok(h.opsLog.some((line) => line.startsWith('warn issuer keys could not be refreshed') && line.includes('cachedKeysUntil')), h.opsLog.join('\n'));
      clock.advance(WINDOW - MINUTE - 1000);
      await exchangeOk('one second before the window ends');

      clock.advance(2000);
      await refused(503, 'upstream_unavailable');
      await refused(503, 'upstream_unavailable');
      assert.equal(await readiness(), false, 'not ready once the cached keys are past the window');
      assert.ok(h.opsLog.some((line) => line.startsWith('warn issuer keys could not be loaded; not ready')), h.opsLog.join('\n'));

      await comeBack();
      clock.advance(COOLDOWN);
      await exchangeOk('the issuer answers again');
      assert.equal(await readiness(), true);
    });

    it('answers 503 for a kid it has not cached while the key set cannot be fetched, and still verifies known kids', async () => {
      const unknown = await generateRsaSigningKey('never-published');
      await goDown();
      clock.advance(COOLDOWN);
      await refused(503, 'upstream_unavailable', unknown); // a fetch was attempted and failed
      await refused(503, 'upstream_unavailable', unknown); // cooling down after that failure
      clock.advance(COOLDOWN);
      await refused(503, 'upstream_unavailable', unknown);
      await exchangeOk('a cached kid within the cache lifetime');
    });

    it('picks up a key rotated in during the outage once the issuer answers again and the cooldown allows', async () => {
      const rotated = await generateRsaSigningKey('standin-key-2');
      gitlab.publish(rotated);
      await goDown();
      clock.advance(COOLDOWN);
      await refused(503, 'upstream_unavailable', rotated);
      await comeBack();
      await refused(503, 'upstream_unavailable', rotated); // the failed fetch's cooldown still runs
      clock.advance(COOLDOWN);
      await exchangeOk('the rotated key', rotated);
      await exchangeOk('the old key, still published');
    });

    it('asks a down issuer at most once per cooldown, however many requests arrive', async () => {
      await goDown();
      clock.advance(CACHE_MAX_AGE + WINDOW + MINUTE);
      const before = gitlab.hitCount(KEYS_PATH);
      const results = await Promise.all(Array.from({ length: 20 }, async () => h.exchange(await token())));
      assert.ok(results.every((result) => result.status === 503 && result.body.code === 'upstream_unavailable'), results.map((result) => result.status).join(','));
      assert.ok(gitlab.hitCount(KEYS_PATH) - before <= 1, `key set fetched ${gitlab.hitCount(KEYS_PATH) - before} times`);
    });
  });
}

describe('the outage window default', () => {
  it('is 15 minutes past the cache lifetime when jwksOutageWindow is not set', async () => {
    const gitlab = await startGitLab();
    const clock = movableClock();
    const h = await startHarness({ gitlab, policy: POLICY, overrides: { clock, jwksCooldownMs: COOLDOWN } });
    const exchange = async () => {
      const iat = Math.floor(clock.now().getTime() / 1000);
      return h.exchange(await gitlab.token(AUDIENCE, { iat, nbf: iat - 5, exp: iat + 3600 }));
    };
    try {
      assert.equal((await exchange()).status, 200);
      gitlab.faults.jwksStatus = 500;
      clock.advance(CACHE_MAX_AGE + 15 * MINUTE - 1000);
      assert.equal((await exchange()).status, 200);
      clock.advance(2000);
      const result = await exchange();
      assert.equal(result.status, 503, result.text);
      assert.equal(result.body.code, 'upstream_unavailable');
    } finally {
      await h.close();
      await gitlab.close();
    }
  });
});
