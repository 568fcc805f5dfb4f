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
  // Escape at most what can be shown: never scan a 64 KiB value to show 64 characters of it.
  const head = value.length > max ? value.slice(0, max) : value;
  let shown = HAS_UNPRINTABLE.test(head) ? head.replace(UNPRINTABLE, escapeUnprinted) : head;
  if (shown.length <= max && head.length === value.length) return shown;
  shown = shown.slice(0, max);
  // Never end on half of an escape or of a surrogate pair.
  const cut = shown.lastIndexOf('\\u');
  if (cut >= 0 && cut > shown.length - 6) shown = shown.slice(0, cut);
  if (/[\ud800-\udbff]$/.test(shown)) shown = shown.slice(0, -1);
  return `${shown}…(${value.length} chars)`;
}

/** `value` quoted for a message, after `echo`. */
export function quote(value: string, max: number = MAX_ECHO_CHARS): string {
  return `"${echo(value, max)}"`;
}
