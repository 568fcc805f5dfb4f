/** Durations as config and policy spell them ("90s", "1h30m"), read as seconds and written back in the largest whole unit. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../src/core/duration.js';

describe('parseDuration', () => {
  const valid: Array<[string, number]> = [['90s', 90], ['15m', 900], ['2h', 7200], ['1d', 86400], ['1h30m', 5400], ['1m1m', 120], ['999999s', 999999], ['0m5s', 5]];
  for (const [text, seconds] of valid) it(`reads ${text} as ${seconds} s`, () => assert.equal(parseDuration(text), seconds));

  const invalid = ['', '0s', '0h0m', '15', 'm', '15x', '1.5h', '-5m', ' 5m', '5m ', '1000000s', '5M', '5m!', 'x5m'];
  for (const text of invalid) it(`refuses ${JSON.stringify(text)}`, () => assert.equal(parseDuration(text), undefined));
});

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [[7200, '2h'], [3600, '1h'], [5400, '90m'], [60, '1m'], [90, '90s'], [1, '1s']];
  for (const [seconds, text] of cases) it(`writes ${seconds} s as ${text}`, () => assert.equal(formatDuration(seconds), text));
});
