/** The duplicate/prototype key scanner that guards every token payload and request body. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findJsonKeyProblem, parseStrictJson } from '../src/core/strict-json.js';

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

  // The case texts are compact JSON, so JSON.parse then JSON.stringify gives the same text back exactly when no key
  // was lost: JSON.parse keeps the last of two equal keys silently, which is what the scanner exists to catch.
  it('agrees with JSON.parse on which keys an object has: no key lost where it finds no problem, one lost where it finds a duplicate', () => {
    for (const { text, expected } of cases) {
      if (expected === undefined) assert.equal(JSON.stringify(JSON.parse(text)), text);
      else if (expected.kind === 'duplicate') assert.notEqual(JSON.stringify(JSON.parse(text)), text.replace(/\\u0061/g, 'a'));
    }
  });
});

/** Texts with nested objects and arrays, some with a key repeated or a forbidden key, some with escapes. */
function* generatedTexts(count: number): Generator<string> {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % n; // the high bits: an LCG's low bits repeat with a short period
  };
  const keys = ['a', 'b', 'c', 'k\\"', '\\u0061', '__proto__', 'constructor', 'x,y', 'p:q'];
  const value = (depth: number): string => {
    const pick = depth === 0 ? 5 : random(depth > 3 ? 3 : 6);
    if (pick === 0) return '"v\\"{,}"';
    if (pick === 1) return String(random(100));
    if (pick === 2) return 'true';
    if (pick === 3) return `[${Array.from({ length: random(3) }, () => value(depth + 1)).join(',')}]`;
    const names = Array.from({ length: random(4) }, () => keys[random(keys.length)] as string);
    return `{${names.map((name) => `"${name}":${value(depth + 1)}`).join(',')}}`;
  };
  for (let i = 0; i < count; i++) yield value(0);
}

describe('parseStrictJson', () => {
  for (const { name, text, expected } of cases) {
    it(`${name}: the same verdict as the scanner`, () => {
      const result = parseStrictJson(text);
      if (expected === undefined) assert.deepEqual(result, { value: JSON.parse(text) });
      else assert.deepEqual(result, { problem: expected });
    });
  }

  it('agrees with the scanner on 3,000 generated texts, duplicates and forbidden keys among them', () => {
    let refused = 0;
    for (const text of generatedTexts(3000)) {
      const scanned = findJsonKeyProblem(text);
      const result = parseStrictJson(text);
      if (scanned === undefined) assert.deepEqual(result, { value: JSON.parse(text) }, text);
      else {
        assert.deepEqual(result, { problem: scanned }, text);
        refused++;
      }
    }
    assert.ok(refused > 300 && refused < 2700, `both kinds of text were generated (${refused} refused)`);
  });

  it('refuses text that is not JSON, without scanning it', () => {
    assert.deepEqual(parseStrictJson('{"a":1,'), { problem: { kind: 'syntax' } });
    assert.deepEqual(parseStrictJson(''), { problem: { kind: 'syntax' } });
  });
});

describe('the limits and corners of both', () => {
  const arrays = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const objects = (depth: number): string => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;

  it('accept nesting of exactly the limit and refuse one level more, of arrays and of objects', () => {
    for (const [name, nest] of [['arrays', arrays], ['objects', objects]] as const) {
      assert.equal(findJsonKeyProblem(nest(32)), undefined, name);
      assert.deepEqual(findJsonKeyProblem(nest(33)), { kind: 'syntax' }, name);
      assert.deepEqual(parseStrictJson(nest(32)), { value: JSON.parse(nest(32)) }, name);
      assert.deepEqual(parseStrictJson(nest(33)), { problem: { kind: 'syntax' } }, name);
      assert.deepEqual(parseStrictJson(nest(3), 2), { problem: { kind: 'syntax' } }, name);
    }
  });

  it('refuse too deep a value under a key, also where a duplicate key would even out the count', () => {
    assert.deepEqual(parseStrictJson(`{"a":${arrays(40)}}`), { problem: { kind: 'syntax' } });
    assert.deepEqual(parseStrictJson(`{"a":1,"a":${arrays(40)}}`), { problem: { kind: 'duplicate', key: 'a' } });
  });

  it('refuse "prototype" as a key', () => {
    assert.deepEqual(findJsonKeyProblem('{"prototype":{}}'), { kind: 'forbidden', key: 'prototype' });
    assert.deepEqual(parseStrictJson('[{"prototype":1}]'), { problem: { kind: 'forbidden', key: 'prototype' } });
  });

  it('take null, numbers, booleans and strings as values with no keys', () => {
    const text = '{"n":null,"a":[null,1,true,"xy"],"s":"abc","o":{"k":null}}';
    assert.deepEqual(parseStrictJson(text), { value: JSON.parse(text) });
    assert.deepEqual(parseStrictJson('null'), { value: null });
    assert.deepEqual(parseStrictJson('"a\\"b"'), { value: 'a"b' });
    // An escape right after the opening quote: the quick search for the closing quote must not stop at the escaped one.
    assert.deepEqual(parseStrictJson('"\\"{\\"a\\":1,\\"a\\":2}"'), { value: '"{"a":1,"a":2}' });
    assert.equal(findJsonKeyProblem('"\\"x"'), undefined);
  });
});
