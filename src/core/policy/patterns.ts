/**
 * Turning policy patterns into anchored matchers. Globs: `*` and `?` stay inside one path segment, `**` crosses `/`.
 * Regexes: RE2 syntax (no lookaround, no backreferences), compiled as ^(?:…)$; in a path claim, `.`, negated classes and
 * \S \W \D are narrowed so they never match `/` unless `allowSlash` is set.
 * Every pattern runs on re2js, a linear-time engine: a claim value comes from the caller's token, and a backtracking
 * engine lets one crafted value stall the process (`review/([a-z]|[0-9a-z])*` against a long ref). Why re2js and not
 * re2 or re2-wasm: docs/architecture.md.
 */
import { RE2JS } from 're2js';

export class PatternError extends Error {
  override readonly name = 'PatternError';
}

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\]/g;

export function escapeRegex(text: string): string {
  return text.replace(REGEX_SPECIAL, '\\$&');
}

export function globToRegexSource(glob: string, allowSlash: boolean): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else out += allowSlash ? '.*' : '[^/]*';
    } else if (ch === '?') out += allowSlash ? '.' : '[^/]';
    else out += escapeRegex(ch);
  }
  return out;
}

const UNSAFE_GROUP = /\(\?(?:[=!]|<[=!])/;
const BACKREFERENCE = /\\(?:[1-9]|k<)/;

/**
 * Rewrites a regex so it cannot match `/` except where the author wrote one. Constructs whose reach we cannot bound
 * cheaply (Unicode property escapes, a class range with an escaped endpoint) are refused rather than guessed at.
 */
function narrowToSegment(source: string): string {
  let out = '';
  let inClass = false;
  let classStart = 0;
  let lastWasEscape = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] as string;
    if (ch === '\\') {
      const next = source[i + 1] ?? '';
      if (next === 'p' || next === 'P') throw new PatternError(`\\${next}{…} can match "/"; set allowSlash: true`);
      if (/[SWD]/.test(next)) {
        if (inClass) throw new PatternError(`\\${next} inside a character class can match "/"; set allowSlash: true`);
        out += `[^\\${next.toLowerCase()}/]`;
      } else out += ch + next;
      i++;
      lastWasEscape = true;
      continue;
    }
    if (inClass) {
      if (ch === ']' && i > classStart) inClass = false;
      else if (ch === '-' && i > classStart && source[i + 1] !== ']') {
        if (lastWasEscape || source[i + 1] === '\\') throw new PatternError('a character range with an escaped endpoint needs allowSlash: true');
        const low = source.charCodeAt(i - 1);
        const high = source.charCodeAt(i + 1);
        if (low <= 0x2f && high >= 0x2f) throw new PatternError('a character range spanning "/" needs allowSlash: true');
      }
      out += ch;
      lastWasEscape = false;
      continue;
    }
    lastWasEscape = false;
    if (ch === '[') {
      inClass = true;
      if (source[i + 1] === '^') {
        out += '[^/';
        i++;
      } else out += ch;
      classStart = i + 1;
    } else if (ch === '.') out += '[^/]';
    else out += ch;
  }
  return out;
}

/** A compiled pattern: whole-string match in time linear in the value's length. */
export interface PatternMatcher {
  test(value: string): boolean;
}

function linearMatcher(body: string): PatternMatcher {
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(`^(?:${body})$`);
  } catch (err) {
    throw new PatternError(`invalid regex (RE2 syntax): ${(err as Error).message.replace(/^error parsing regexp: /, '')}`);
  }
  return { test: (value) => compiled.matches(value) };
}

/** Compiles a glob (see globToRegexSource) to a linear-time matcher. */
export function compileGlob(glob: string, allowSlash: boolean): PatternMatcher {
  return linearMatcher(globToRegexSource(glob, allowSlash));
}

/** Validates and anchors a policy regex; throws PatternError with a readable reason. */
export function compileRegex(source: string, options: { pathClaim: boolean; allowSlash: boolean }): PatternMatcher {
  if (UNSAFE_GROUP.test(source)) throw new PatternError('lookaround is not allowed (RE2 syntax only)');
  if (BACKREFERENCE.test(source)) throw new PatternError('backreferences are not allowed (RE2 syntax only)');
  return linearMatcher(options.pathClaim && !options.allowSlash ? narrowToSegment(source) : source);
}
