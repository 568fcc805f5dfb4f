/**
 * JSON.parse keeps the last of duplicate keys and happily creates "__proto__" own properties; a token whose claims
 * read differently to two parsers is an attack on whichever parser is not ours. findJsonKeyProblem walks the text once
 * and names the first duplicate or prototype-polluting key; parseStrictJson refuses the same texts at little more than
 * JSON.parse's own cost, and asks the scanner only to name what it refused.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type StrictJsonProblem = { readonly kind: 'duplicate' | 'forbidden'; readonly key: string } | { readonly kind: 'syntax' };

/**
 * The index of the quote that closes the string whose content starts at `start`, or -1 when nothing closes it.
 * `nextEscape` is the first backslash at or after `start` (or -1): when none comes before the first quote, as in nearly
 * every token, one native search finds the end instead of a loop per character.
 */
function closingQuote(text: string, start: number, nextEscape: number): number {
  const quote = text.indexOf('"', start);
  if (quote === -1 || nextEscape === -1 || nextEscape > quote) return quote;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) return i;
  }
  return -1;
}

export function findJsonKeyProblem(text: string, maxDepth = 32): StrictJsonProblem | undefined {
  const stack: Array<Set<string> | null> = []; // null marks an array
  let i = 0;
  const n = text.length;
  let expectKey = false;
  let nextEscape = text.indexOf('\\'); // -1 in nearly every token (closingQuote)
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const start = i + 1;
      if (nextEscape !== -1 && nextEscape < start) nextEscape = text.indexOf('\\', start);
      const close = closingQuote(text, start, nextEscape);
      if (close === -1) return { kind: 'syntax' };
      // Without escapes the key is its own text (a raw control character fails JSON.parse later).
      const plain = nextEscape === -1 || nextEscape > close;
      if (!plain) nextEscape = text.indexOf('\\', close);
      i = close;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        let key: string;
        if (plain) key = text.slice(start, i);
        else {
          try {
            key = JSON.parse(text.slice(start - 1, i + 1)) as string;
          } catch {
            return { kind: 'syntax' };
          }
        }
        if (FORBIDDEN_KEYS.has(key)) return { kind: 'forbidden', key };
        if (top.has(key)) return { kind: 'duplicate', key };
        top.add(key);
        expectKey = false;
      }
      i++;
      continue;
    }
    if (ch === 0x7b /* { */) {
      stack.push(new Set());
      if (stack.length > maxDepth) return { kind: 'syntax' };
      expectKey = true;
    } else if (ch === 0x5b /* [ */) {
      stack.push(null);
      if (stack.length > maxDepth) return { kind: 'syntax' };
      expectKey = false;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    }
    i++;
  }
  return undefined;
}

/** How many object keys the text spells, duplicates included, or -1 when it is not even well delimited. */
function countSpelledKeys(text: string): number {
  const inObject: boolean[] = [];
  let count = 0;
  let expectKey = false;
  let nextEscape = text.indexOf('\\');
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const start = i + 1;
      if (nextEscape !== -1 && nextEscape < start) nextEscape = text.indexOf('\\', start);
      const close = closingQuote(text, start, nextEscape);
      if (close === -1) return -1;
      if (nextEscape !== -1 && nextEscape < close) nextEscape = text.indexOf('\\', close);
      i = close;
      if (expectKey) count++;
      expectKey = false;
    } else if (ch === 0x7b /* { */) {
      inObject.push(true);
      expectKey = true;
    } else if (ch === 0x5b /* [ */) {
      inObject.push(false);
      expectKey = false;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      inObject.pop();
      expectKey = false;
    } else if (ch === 0x2c /* , */) {
      expectKey = inObject[inObject.length - 1] === true;
    }
  }
  return count;
}

/** Own keys of every object in a parsed value, or -1 for a forbidden key or nesting past maxDepth. */
function countParsedKeys(value: unknown, depth: number, maxDepth: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (depth > maxDepth) return -1;
  let total = 0;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      const keys = countParsedKeys(item, depth + 1, maxDepth);
      if (keys < 0) return -1;
      total += keys;
    }
    return total;
  }
  const object = value as Record<string, unknown>;
  for (const key of FORBIDDEN_KEYS) if (Object.hasOwn(object, key)) return -1;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const keys = countParsedKeys(object[key], depth + 1, maxDepth);
    if (keys < 0) return -1;
    total += 1 + keys;
  }
  return total;
}

export type StrictJsonResult = { readonly value: unknown; readonly problem?: undefined } | { readonly value?: undefined; readonly problem: StrictJsonProblem };

/**
 * JSON.parse, refusing what findJsonKeyProblem refuses. The common case costs little more than JSON.parse itself: every
 * object of the parsed value has one own key per key the text spells exactly when no key is repeated (duplicates
 * collapse), so one counting pass over the text and one walk of the value decide it, without a set or a string per
 * key. Only a text that fails that check is scanned again, to name the key.
 */
export function parseStrictJson(text: string, maxDepth = 32): StrictJsonResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: { kind: 'syntax' } };
  }
  const parsedKeys = countParsedKeys(value, 1, maxDepth);
  if (parsedKeys >= 0 && parsedKeys === countSpelledKeys(text)) return { value };
  // The counts disagree, so something is wrong: the scan names it; should it find nothing, refuse anyway.
  return { problem: findJsonKeyProblem(text, maxDepth) ?? { kind: 'syntax' } };
}
