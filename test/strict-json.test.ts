/** The duplicate/prototype key scanner that guards every token payload and request body. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findJsonKeyProblem } from '../src/core/strict-json.js';

const cases: Array<{ name: string; text: string; expected: ReturnType<typeof findJsonKeyProblem> }> = [
  { name: 'a plain object', text: '{"a":"1","b":{"c":[1,2,{"d":"x"}]}}', expected: undefined },
  { name: 'the same key in sibling objects', text: '{"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]}', expected: undefined },
  { name: 'a duplicate key', text: '{"a":"1","b":"2","a":"3"}', expected: { kind: 'duplicate', key: 'a' } },
  { name: 'a duplicate key in a nested object', text: '{"x":{"a":1,"a":2}}', expected: { kind: 'duplicate', key: 'a' } },
  { name: 'a duplicate spelled with an escape', text: '{"ab":1,"\\u0061b":2}', expected: { kind: 'duplicate', key: 'ab' } },
  { name: '__proto__', text: '{"__proto__":{"admin":true}}', expected: { kind: 'forbidden', key: '__proto__' } },
  { name: '__proto__ spelled with escapes', text: '{"\\u005f_proto__":{}}', expected: { kind: 'forbidden', key: '__proto__' } },
  { name: 'constructor in a nested object', text: '{"a":[{"constructor":1}]}', expected: { kind: 'forbidden', key: 'constructor' } },
  { name: 'escaped quotes and backslashes in values', text: '{"a":"x\\"y\\\\","b":"\\\\","a2":"\\"a\\":1"}', expected: undefined },
  { name: 'a value that looks like a duplicate key', text: '{"a":"\\",\\"a\\":\\"2","b":1}', expected: undefined },
  { name: 'an escaped key after escaped values', text: '{"v":"\\\\","k\\"":1,"k\\"":2}', expected: { kind: 'duplicate', key: 'k"' } },
  { name: 'keys that are values of an array', text: '{"a":["a","a"]}', expected: undefined },
  { name: 'an unterminated string', text: '{"a":"1', expected: { kind: 'syntax' } },
  { name: 'an unterminated string after an escape', text: '{"a":"1\\"}', expected: { kind: 'syntax' } },
  { name: 'an invalid escape in a key', text: '{"\\x":1}', expected: { kind: 'syntax' } },
  { name: 'nesting deeper than the limit', text: `${'['.repeat(40)}${']'.repeat(40)}`, expected: { kind: 'syntax' } },
];

describe('findJsonKeyProblem', () => {
  for (const { name, text, expected } of cases) {
    it(name, () => {
      assert.deepEqual(findJsonKeyProblem(text), expected);
    });
  }

  it('agrees with JSON.parse on which keys an object has, for texts without problems', () => {
    for (const { text, expected } of cases) {
      if (expected !== undefined) continue;
      assert.doesNotThrow(() => JSON.parse(text), text);
    }
  });
});
