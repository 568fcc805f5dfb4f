/** How long a Google access token may live: the rule, the ID token and the hour, whichever ends first. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grantExpiry, HARD_CAP_SECONDS } from '../src/core/grants.js';

const now = new Date('2026-03-01T12:00:00.400Z');
const nowSeconds = Math.floor(now.getTime() / 1000);

describe('the google grant expiry', () => {
  it('has a hard cap of one hour', () => assert.equal(HARD_CAP_SECONDS.google, 3600));
  const cases: { name: string; ruleSeconds: number; tokenExpIn: number; seconds: number }[] = [
    { name: 'the rule, when it ends first', ruleSeconds: 900, tokenExpIn: 3000, seconds: 900 },
    { name: 'the ID token, when it ends first', ruleSeconds: 900, tokenExpIn: 300, seconds: 300 },
    { name: 'one hour, whatever the rule and the token say', ruleSeconds: 7200, tokenExpIn: 7200, seconds: 3600 },
    { name: 'zero, never negative, for an expired ID token', ruleSeconds: 900, tokenExpIn: -10, seconds: 0 },
  ];
  for (const c of cases) {
    it(`is ${c.name}`, () => {
      const expiry = grantExpiry(now, c.ruleSeconds, 'google', nowSeconds + c.tokenExpIn);
      assert.equal(expiry.seconds, c.seconds);
      assert.equal(expiry.at.getTime(), (nowSeconds + c.seconds) * 1000);
    });
  }
  it('never outlives the ID token even when now has milliseconds', () => {
    const expiry = grantExpiry(now, 3600, 'google', nowSeconds + 60);
    assert.ok(expiry.at.getTime() <= (nowSeconds + 60) * 1000);
  });
});
