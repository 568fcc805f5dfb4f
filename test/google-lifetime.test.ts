/** How long a Google access token may live: the rule, the ID token and the hour, whichever ends first. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GOOGLE_MAX_LIFETIME_SECONDS, googleLifetime } from '../src/core/google-lifetime.js';

const now = new Date('2026-03-01T12:00:00.400Z');
const nowSeconds = Math.floor(now.getTime() / 1000);

describe('googleLifetime', () => {
  const cases: { name: string; ruleSeconds: number; tokenExpIn: number; seconds: number }[] = [
    { name: 'the rule, when it ends first', ruleSeconds: 900, tokenExpIn: 3000, seconds: 900 },
    { name: 'the ID token, when it ends first', ruleSeconds: 900, tokenExpIn: 300, seconds: 300 },
    { name: 'one hour, whatever the rule and the token say', ruleSeconds: 7200, tokenExpIn: 7200, seconds: GOOGLE_MAX_LIFETIME_SECONDS },
    { name: 'zero, never negative, for an expired ID token', ruleSeconds: 900, tokenExpIn: -10, seconds: 0 },
  ];
  for (const c of cases) {
    it(`is ${c.name}`, () => {
      const lifetime = googleLifetime({ ruleSeconds: c.ruleSeconds, tokenExp: nowSeconds + c.tokenExpIn, now });
      assert.equal(lifetime.seconds, c.seconds);
      assert.equal(lifetime.expiresAt.getTime(), (nowSeconds + c.seconds) * 1000);
    });
  }
  it('never outlives the ID token even when now has milliseconds', () => {
    const lifetime = googleLifetime({ ruleSeconds: 3600, tokenExp: nowSeconds + 60, now });
    assert.ok(lifetime.expiresAt.getTime() <= (nowSeconds + 60) * 1000);
  });
});
