/**
 * Checks on an ID token that need no keys: shape, header, issuer, audience and times. Pure; time is an argument.
 * Signature verification happens in the adapter between `inspectUnverified` and `checkTimes`.
 */
import { echo, quote } from './echo.js';
import { BrokerError } from './errors.js';
import { parseStrictJson } from './strict-json.js';

/** Larger than any GitLab ID token; checked before decoding anything. */
export const MAX_TOKEN_LENGTH = 12 * 1024;
// Open-ended repetition: irregexp runs a counted one ({2,16384}) at half the speed. The whole token is bounded by
// MAX_TOKEN_LENGTH first, and the header and signature by their own limits below.
const COMPACT_JWS = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}$/;
const MAX_HEADER_SEGMENT = 1024;
const MAX_SIGNATURE_SEGMENT = 2048;
/** GitLab sends exactly these; jku/x5u/jwk/x5c/crit/b64 and anything else are refused, so no key is ever fetched from the token. */
const ALLOWED_HEADER_KEYS = new Set(['alg', 'kid', 'typ']);

export interface UnverifiedToken {
  readonly kid: string;
  readonly iss: string;
  readonly payloadJson: string;
  /** The payload, parsed once here (duplicate and prototype keys already refused); trust it only after the signature. */
  readonly payload: Readonly<Record<string, unknown>>;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * True when `segment` (already known to use only the base64url alphabet) is the one encoding of its bytes: no length
 * that leaves a lone 6-bit group, and zero padding bits in the last character. Decoders ignore those bits, so without
 * this check one token has up to 16 spellings that all verify, and its SHA-256 is no identifier.
 */
export function isCanonicalBase64Url(segment: string): boolean {
  const unusedBits = [0, -1, 4, 2][segment.length % 4] as number;
  if (unusedBits < 0) return false;
  if (unusedBits === 0) return true;
  const last = BASE64URL.indexOf(segment[segment.length - 1] as string);
  return (last & ((1 << unusedBits) - 1)) === 0;
}

function decodeSegment(segment: string, what: string, decode: (segment: string) => string): { text: string; value: Record<string, unknown> } {
  let text: string;
  try {
    text = decode(segment);
  } catch {
    throw new BrokerError('invalid_token', `${what} is not base64url`);
  }
  const { value, problem } = parseStrictJson(text);
  if (problem) {
    throw new BrokerError('invalid_token', problem.kind === 'syntax' ? `${what} is not JSON` : `${what} has a ${problem.kind} key ${quote(problem.key)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BrokerError('invalid_token', `${what} is not a JSON object`);
  return { text, value: value as Record<string, unknown> };
}

/**
 * Structural checks before any key lookup: a compact JWS in canonical base64url, header {alg: RS256, kid, typ?} and nothing else, a payload
 * without duplicate or prototype keys, and a string `iss` to choose the issuer by.
 * `decode` turns base64url into UTF-8 text (injected so core stays free of Buffer).
 */
export function inspectUnverified(token: string, decode: (segment: string) => string): UnverifiedToken {
  if (token.length > MAX_TOKEN_LENGTH) throw new BrokerError('invalid_token', 'token is too long');
  if (!COMPACT_JWS.test(token)) throw new BrokerError('invalid_token', 'not a compact JWS');
  const [headerSegment, payloadSegment, signatureSegment] = token.split('.') as [string, string, string];
  if (headerSegment.length > MAX_HEADER_SEGMENT || signatureSegment.length > MAX_SIGNATURE_SEGMENT) throw new BrokerError('invalid_token', 'not a compact JWS');
  if (!isCanonicalBase64Url(headerSegment) || !isCanonicalBase64Url(payloadSegment) || !isCanonicalBase64Url(signatureSegment)) {
    throw new BrokerError('invalid_token', 'a segment is not canonical base64url');
  }
  const header = decodeSegment(headerSegment, 'header', decode).value;
  for (const key of Object.keys(header)) {
    if (!ALLOWED_HEADER_KEYS.has(key)) throw new BrokerError('invalid_token', `header parameter ${echo(key)} is not allowed`);
  }
  if (header.alg !== 'RS256') throw new BrokerError('invalid_token', 'alg must be RS256');
  if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 256) throw new BrokerError('invalid_token', 'header kid is required');
  if (header.typ !== undefined && header.typ !== 'JWT') throw new BrokerError('invalid_token', 'typ must be JWT');
  const { text: payloadJson, value: payload } = decodeSegment(payloadSegment, 'payload', decode);
  if (typeof payload.iss !== 'string') throw new BrokerError('invalid_token', 'missing claim iss');
  return { kid: header.kid, iss: payload.iss, payloadJson, payload };
}

/** aud must be exactly the configured audience: a string, or an array holding only it. */
export function checkAudience(aud: unknown, expected: string): void {
  const ok =
    aud === expected ||
    (Array.isArray(aud) && aud.length > 0 && aud.length <= 8 && aud.every((value) => value === expected));
  if (!ok) throw new BrokerError('audience_mismatch', 'aud must be exactly the configured audience');
}

export interface TokenTimes {
  readonly exp: number;
  readonly iat: number;
  readonly nbf: number | undefined;
}

export interface TimePolicy {
  readonly maxTokenAgeSeconds: number;
  readonly toleranceSeconds: number;
}

/** exp, nbf and iat with a small tolerance; `maxTokenAge` bounds both the token's age and its lifetime. */
export function checkTimes(times: TokenTimes, now: Date, policy: TimePolicy): void {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const tolerance = policy.toleranceSeconds;
  if (times.exp <= times.iat) throw new BrokerError('invalid_token', 'exp must be after iat');
  if (times.exp + tolerance <= nowSeconds) throw new BrokerError('token_expired', 'the token has expired');
  if (times.nbf !== undefined && times.nbf - tolerance > nowSeconds) throw new BrokerError('token_expired', 'the token is not valid yet (nbf)');
  if (times.iat - tolerance > nowSeconds) throw new BrokerError('token_expired', 'the token was issued in the future (iat)');
  if (nowSeconds - times.iat > policy.maxTokenAgeSeconds + tolerance) throw new BrokerError('token_expired', 'the token is older than the maximum age');
  if (times.exp - times.iat > policy.maxTokenAgeSeconds) throw new BrokerError('token_expired', 'the token is valid for longer than the maximum age');
}
