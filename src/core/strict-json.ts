/**
 * JSON.parse keeps the last of duplicate keys and happily creates "__proto__" own properties; a token whose claims
 * read differently to two parsers is an attack on whichever parser is not ours. This scanner walks the text once and
 * refuses duplicate keys and prototype-polluting keys before anything else reads it.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type StrictJsonProblem = { readonly kind: 'duplicate' | 'forbidden'; readonly key: string } | { readonly kind: 'syntax' };

export function findJsonKeyProblem(text: string, maxDepth = 32): StrictJsonProblem | undefined {
  const stack: Array<Set<string> | null> = []; // null marks an array
  let i = 0;
  const n = text.length;
  let expectKey = false;
  let nextEscape = text.indexOf('\\'); // -1 in nearly every token: then no string needs a per-character walk
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const start = i + 1;
      let plain = true; // no escapes: the key is its own text (a raw control character fails JSON.parse later)
      const close = text.indexOf('"', start);
      if (close === -1) return { kind: 'syntax' };
      if (nextEscape !== -1 && nextEscape < start) nextEscape = text.indexOf('\\', start);
      if (nextEscape === -1 || nextEscape > close) {
        i = close; // the common case: one native search instead of a loop per character
      } else {
        plain = false;
        i = start;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === 0x5c /* \ */) i += 2;
          else if (c === 0x22) break;
          else i++;
        }
        nextEscape = text.indexOf('\\', i);
      }
      if (i >= n) return { kind: 'syntax' };
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
