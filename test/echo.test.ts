/** echo(): what the broker repeats of a caller's text is short and printable. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { echo, MAX_ECHO_CHARS, quote } from '../src/core/echo.js';

describe('echo', () => {
  const cases: Array<{ name: string; input: string; expected: string }> = [
    { name: 'leaves short printable text alone', input: 'payments/api', expected: 'payments/api' },
    { name: 'escapes a line break and an ANSI escape', input: 'a\nb\u001b[31m', expected: 'a\\u000ab\\u001b[31m' },
    { name: 'escapes the line separator and a bidi override', input: 'x\u2028y\u202ez', expected: 'x\\u2028y\\u202ez' },
    { name: 'escapes a lone surrogate but keeps a pair', input: 'a\ud800b😀', expected: 'a\\ud800b😀' },
    { name: 'cuts long text and says how long it was', input: 'k'.repeat(70_000), expected: `${'k'.repeat(MAX_ECHO_CHARS)}…(70000 chars)` },
  ];
  for (const item of cases) {
    it(item.name, () => assert.equal(echo(item.input), item.expected));
  }

  it('never ends on half an escape', () => {
    const shown = echo(`${'a'.repeat(60)}\n${'b'.repeat(100)}`);
    assert.equal(shown, `${'a'.repeat(60)}…(161 chars)`);
  });

  it('never ends on half a surrogate pair', () => {
    const shown = echo('😀'.repeat(40), 9);
    assert.equal(shown, `${'😀'.repeat(4)}…(80 chars)`);
  });

  it('stays within the cap plus its marker for any input', () => {
    for (const input of ['\u0000'.repeat(1000), '😀'.repeat(1000), 'é\n'.repeat(1000)]) {
      assert.ok(echo(input).length <= MAX_ECHO_CHARS + '…(2000 chars)'.length, echo(input));
    }
  });

  it('escapes a lone high surrogate at the end of short text', () => assert.equal(echo('a\ud800'), 'a\\ud800'));

  it('cuts short text whose escapes run past the cap, at a whole escape', () => {
    assert.equal(echo('\n'.repeat(20)), `${'\\u000a'.repeat(10)}…(20 chars)`);
    assert.equal(echo('\n\n', 4), '…(2 chars)');
  });

  it('keeps text whose escapes fill the cap exactly', () => {
    assert.equal(echo(`${'a'.repeat(58)}\n`), `${'a'.repeat(58)}\\u000a`);
  });

  it('cuts only an escape that the cap splits, not an earlier or a whole one', () => {
    assert.equal(echo(`a\n${'b'.repeat(100)}`), `a\\u000a${'b'.repeat(57)}…(102 chars)`);
    assert.equal(echo(`${'a'.repeat(58)}\n${'b'.repeat(10)}`), `${'a'.repeat(58)}\\u000a…(69 chars)`);
    assert.equal(echo(`${'a'.repeat(62)}\\${'b'.repeat(10)}`), `${'a'.repeat(62)}\\b…(73 chars)`, 'a backslash the caller sent is no escape');
  });

  it('drops the high half of a pair that the cap splits after escaping, for every high surrogate', () => {
    for (const pair of ['😀', '\ud800\udc00', '\udbff\udfff']) {
      assert.equal(echo(`\nx${pair.repeat(30)}`), `\\u000ax${pair.repeat(28)}…(62 chars)`, pair);
    }
  });

  it('quote wraps the echo in double quotes', () => assert.equal(quote('a\tb'), '"a\\u0009b"'));
});
