/**
 * Caller-controlled text that the broker repeats (in a problem detail, a reason, an audit record) is made short and
 * printable first: a 60 KiB JSON key or a claim full of control characters must not turn one refusal into a 60 KiB
 * audit line, nor forge a line break in a terminal or log viewer.
 */

/** The most characters of one caller-controlled value that the broker repeats. */
export const MAX_ECHO_CHARS = 64;

// C0 and C1 controls, DEL, the line and paragraph separators, bidi overrides and isolates, the BOM, and lone
// surrogates (which JSON.stringify would otherwise write as escapes that some readers reject).
const UNPRINTABLE_SOURCE = '[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff]|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]';
const HAS_UNPRINTABLE = new RegExp(UNPRINTABLE_SOURCE);
const UNPRINTABLE = new RegExp(UNPRINTABLE_SOURCE, 'g');

function escapeUnprinted(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * `value` with unprintable characters escaped as `\uXXXX` and cut to `max` characters (marked with `…` and the
 * original length), so what is echoed stays short and printable whatever the caller sent.
 * @example echo('a\nb') === 'a\\u000ab'
 */
export function echo(value: string, max: number = MAX_ECHO_CHARS): string {
  if (value.length <= max && !HAS_UNPRINTABLE.test(value)) return value;
  // Escape at most what can be shown: never scan a 64 KiB value to show 64 characters of it.
  let head = value.length > max ? withoutHalfPair(value.slice(0, max)) : value;
  const escaped = head.replace(UNPRINTABLE, escapeUnprinted);
  if (escaped.length <= max && head.length === value.length) return escaped;
  head = escaped.slice(0, max);
  // Never end on half of an escape (an escape is 6 characters, starting with a backslash).
  const backslash = head.lastIndexOf('\\');
  if (backslash >= 0 && backslash > head.length - 6 && escaped.length > max) head = head.slice(0, backslash);
  return `${withoutHalfPair(head)}…(${value.length} chars)`;
}

function withoutHalfPair(text: string): string {
  const last = text.charCodeAt(text.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? text.slice(0, -1) : text;
}

/** `value` quoted for a message, after `echo`. */
export function quote(value: string, max: number = MAX_ECHO_CHARS): string {
  return `"${echo(value, max)}"`;
}
