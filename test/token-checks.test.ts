/** The key-free checks on an ID token's shape and header (core/token-checks.ts), before any key is looked up. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBrokerError } from '../src/core/errors.js';
import { checkAudience, checkTimes, inspectUnverified, isCanonicalBase64Url, MAX_TOKEN_LENGTH } from '../src/core/token-checks.js';

const decode = (segment: string): string => Buffer.from(segment, 'base64url').toString('utf8');
const segment = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const HEADER = segment({ alg: 'RS256', kid: 'key-1', typ: 'JWT' });
const PAYLOAD = segment({ iss: 'https://gitlab.example.com', project_id: '20' });
const SIGNATURE = Buffer.alloc(256, 7).toString('base64url');

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Sets the lowest padding bit of the last character; the segment's length must leave padding bits (not a multiple of 4). */
function respell(segment: string): string {
  assert.notEqual(segment.length % 4, 0, `${segment} has no padding bits`);
  return segment.slice(0, -1) + (ALPHABET[ALPHABET.indexOf(segment.slice(-1)) | 1] as string);
}

function refusal(token: string): string {
  try {
    inspectUnverified(token, decode);
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    assert.equal(err.code, 'invalid_token');
    return err.detail;
  }
  return assert.fail('accepted');
}

describe('inspectUnverified: shape', () => {
  it('accepts a compact JWS and returns kid, iss and the parsed payload', () => {
    const token = inspectUnverified(`${HEADER}.${PAYLOAD}.${SIGNATURE}`, decode);
    assert.equal(token.kid, 'key-1');
    assert.equal(token.iss, 'https://gitlab.example.com');
    assert.deepEqual(token.payload, { iss: 'https://gitlab.example.com', project_id: '20' });
  });

  const cases: Array<{ name: string; token: string; detail: RegExp }> = [
    { name: 'two segments', token: `${HEADER}.${PAYLOAD}`, detail: /compact JWS/ },
    { name: 'four segments', token: `${HEADER}.${PAYLOAD}.${SIGNATURE}.${SIGNATURE}`, detail: /compact JWS/ },
    { name: 'an empty signature', token: `${HEADER}.${PAYLOAD}.`, detail: /compact JWS/ },
    { name: 'a one-character segment', token: `${HEADER}.${PAYLOAD}.A`, detail: /compact JWS/ },
    { name: 'standard base64 characters', token: `${HEADER}.${PAYLOAD}.${SIGNATURE.slice(0, -2)}+/`, detail: /compact JWS/ },
    { name: 'padding', token: `${HEADER}.${PAYLOAD}.${SIGNATURE}==`, detail: /compact JWS/ },
    { name: 'whitespace', token: `${HEADER}.${PAYLOAD} .${SIGNATURE}`, detail: /compact JWS/ },
    { name: 'a header segment over 1 KiB', token: `${segment({ alg: 'RS256', kid: 'k'.repeat(900), typ: 'JWT' })}.${PAYLOAD}.${SIGNATURE}`, detail: /compact JWS/ },
    { name: 'a signature segment over 2 KiB', token: `${HEADER}.${PAYLOAD}.${'A'.repeat(2049)}`, detail: /compact JWS/ },
    { name: 'a token over the length limit', token: `${HEADER}.${'A'.repeat(MAX_TOKEN_LENGTH)}.${SIGNATURE}`, detail: /too long/ },
    { name: 'a header that is not JSON', token: `${Buffer.from('{"alg":').toString('base64url')}.${PAYLOAD}.${SIGNATURE}`, detail: /header is not JSON/ },
    { name: 'a jku header', token: `${segment({ alg: 'RS256', kid: 'k', jku: 'https://evil.example' })}.${PAYLOAD}.${SIGNATURE}`, detail: /jku is not allowed/ },
    { name: 'a duplicate payload key', token: `${HEADER}.${Buffer.from('{"iss":"a","iss":"b"}').toString('base64url')}.${SIGNATURE}`, detail: /duplicate key "iss"/ },
    // One token, one spelling: decoders ignore the unused low bits of the last character, so these decode like the originals.
    { name: 'a signature whose last character differs only in padding bits', token: `${HEADER}.${PAYLOAD}.${SIGNATURE.slice(0, -1)}${String.fromCharCode(SIGNATURE.charCodeAt(SIGNATURE.length - 1) + 1)}`, detail: /not canonical base64url/ },
    { name: 'a header whose last character differs only in padding bits', token: `${respell(HEADER)}.${PAYLOAD}.${SIGNATURE}`, detail: /not canonical base64url/ },
    { name: 'a payload whose last character differs only in padding bits', token: `${HEADER}.${respell(segment({ iss: 'https://gitlab.example.com', project_id: '2' }))}.${SIGNATURE}`, detail: /not canonical base64url/ },
    { name: 'a segment with a lone 6-bit group', token: `${HEADER}.${PAYLOAD}A.${SIGNATURE}`, detail: /not canonical base64url/ },
    { name: 'a payload without iss', token: `${HEADER}.${segment({ sub: 'x' })}.${SIGNATURE}`, detail: /missing claim iss/ },
  ];
  for (const { name, token, detail } of cases) {
    it(`refuses ${name}`, () => {
      assert.match(refusal(token), detail);
    });
  }

  it('draws the segment limits exactly at 1 KiB (header) and 2 KiB (signature)', () => {
    const header = (bytes: number): string => segment({ alg: 'RS256', kid: 'k'.repeat(bytes - 36), typ: 'JWT' }); // 36: the JSON around the kid
    assert.equal(header(768).length, 1024);
    assert.equal(header(771).length, 1028);
    // A 1 KiB header passes the shape check and is refused for its kid (at most 256 characters), one block past it is not.
    assert.match(refusal(`${header(768)}.${PAYLOAD}.${SIGNATURE}`), /kid/);
    assert.match(refusal(`${header(771)}.${PAYLOAD}.${SIGNATURE}`), /compact JWS/);
    const longSignature = inspectUnverified(`${HEADER}.${PAYLOAD}.${'A'.repeat(2048)}`, decode);
    assert.equal(longSignature.kid, 'key-1');
  });
});

describe('inspectUnverified: header limits, drawn exactly', () => {
  const header = (value: Record<string, unknown>) => `${segment(value)}.${PAYLOAD}.${SIGNATURE}`;
  const table: Array<[what: string, header: Record<string, unknown>, refusal: RegExp | undefined]> = [
    ['a kid of 256 characters', { alg: 'RS256', kid: 'k'.repeat(256) }, undefined],
    ['a kid of 257 characters', { alg: 'RS256', kid: 'k'.repeat(257) }, /header kid is required/],
    ['a kid of one character', { alg: 'RS256', kid: 'k' }, undefined],
    ['an empty kid', { alg: 'RS256', kid: '' }, /header kid is required/],
    ['a numeric kid', { alg: 'RS256', kid: 1 }, /header kid is required/],
    ['no kid', { alg: 'RS256' }, /header kid is required/],
    ['typ JWT', { alg: 'RS256', kid: 'k', typ: 'JWT' }, undefined],
    ['typ jwt', { alg: 'RS256', kid: 'k', typ: 'jwt' }, /typ must be JWT/],
    ['alg rs256', { alg: 'rs256', kid: 'k' }, /alg must be RS256/],
    ['no alg', { kid: 'k' }, /alg must be RS256/],
  ];
  for (const [what, value, expected] of table) {
    it(`${expected ? 'refuses' : 'accepts'} ${what}`, () => {
      if (expected) assert.match(refusal(header(value)), expected);
      else assert.equal(inspectUnverified(header(value), decode).kid, value.kid);
    });
  }

  it('refuses a payload that is not an object, and an iss that is not a string', () => {
    assert.match(refusal(`${HEADER}.${segment(['iss'])}.${SIGNATURE}`), /payload is not a JSON object/);
    assert.match(refusal(`${HEADER}.${segment('x')}.${SIGNATURE}`), /payload is not a JSON object/);
    assert.match(refusal(`${HEADER}.${segment({ iss: 1 })}.${SIGNATURE}`), /missing claim iss/);
  });

  it('accepts a token of exactly the length limit and refuses one character more', () => {
    const payload = segment({ iss: 'https://gitlab.example.com', pad: 'x'.repeat(Math.floor(((MAX_TOKEN_LENGTH - 1500) * 3) / 4)) });
    let signatureLength = MAX_TOKEN_LENGTH - HEADER.length - payload.length - 2;
    assert.ok(signatureLength > 2 && signatureLength <= 2048, String(signatureLength));
    // A length that leaves a lone 6-bit group is not base64url: one character short of the limit then.
    if (signatureLength % 4 === 1) signatureLength -= 1;
    const atLimit = `${HEADER}.${payload}.${'A'.repeat(signatureLength)}`;
    assert.ok(atLimit.length === MAX_TOKEN_LENGTH || atLimit.length === MAX_TOKEN_LENGTH - 1);
    assert.equal(inspectUnverified(atLimit, decode).iss, 'https://gitlab.example.com');
    assert.match(refusal(`${atLimit}${'A'.repeat(MAX_TOKEN_LENGTH + 1 - atLimit.length)}`), /too long/);
  });
});

describe('checkAudience', () => {
  const expected = 'https://broker.test';
  const table: Array<[what: string, aud: unknown, ok: boolean]> = [
    ['the audience as a string', expected, true],
    ['an array holding only it', [expected], true],
    ['an array holding it 8 times', Array.from({ length: 8 }, () => expected), true],
    ['an array holding it 9 times', Array.from({ length: 9 }, () => expected), false],
    ['an empty array', [], false],
    ['an array with another audience too', [expected, 'https://other.test'], false],
    ['another audience', 'https://other.test', false],
    ['a prefix of it', 'https://broker', false],
    ['no audience', undefined, false],
  ];
  for (const [what, aud, ok] of table) {
    it(`${ok ? 'accepts' : 'refuses'} ${what}`, () => {
      if (ok) assert.doesNotThrow(() => checkAudience(aud, expected));
      else assert.throws(() => checkAudience(aud, expected), (err: unknown) => isBrokerError(err) && err.code === 'audience_mismatch');
    });
  }
});

describe('checkTimes', () => {
  const now = new Date(1_800_000_000_000);
  const t = 1_800_000_000;
  const policy = { maxTokenAgeSeconds: 300, toleranceSeconds: 30 };
  const table: Array<[what: string, times: { exp: number; iat: number; nbf?: number }, problem: RegExp | undefined]> = [
    ['a fresh token', { iat: t - 10, exp: t + 200 }, undefined],
    ['exp at iat', { iat: t - 10, exp: t - 10 }, /exp must be after iat/],
    ['exp one second after iat', { iat: t - 10, exp: t - 9 }, undefined],
    ['exp passed by less than the tolerance', { iat: t - 100, exp: t - 29 }, undefined],
    ['exp passed by exactly the tolerance', { iat: t - 100, exp: t - 30 }, /has expired/],
    ['nbf ahead by exactly the tolerance', { iat: t - 10, exp: t + 200, nbf: t + 30 }, undefined],
    ['nbf ahead by more than the tolerance', { iat: t - 10, exp: t + 200, nbf: t + 31 }, /not valid yet/],
    ['iat ahead by exactly the tolerance', { iat: t + 30, exp: t + 200 }, undefined],
    ['iat ahead by more than the tolerance', { iat: t + 31, exp: t + 200 }, /issued in the future/],
    ['a lifetime of exactly the maximum age', { iat: t - 10, exp: t + 290 }, undefined],
    ['a token of the maximum lifetime, its exp passed by less than the tolerance', { iat: t - 310, exp: t - 10 }, undefined],
    ['a lifetime over the maximum age', { iat: t - 10, exp: t + 291 }, /valid for longer than the maximum age/],
  ];
  for (const [what, times, problem] of table) {
    it(`${problem ? 'refuses' : 'accepts'} ${what}`, () => {
      const run = () => checkTimes({ exp: times.exp, iat: times.iat, nbf: times.nbf }, now, policy);
      if (!problem) assert.doesNotThrow(run);
      else {
        assert.throws(run, (err: unknown) => isBrokerError(err) && problem.test(err.detail));
        assert.throws(run, (err: unknown) => isBrokerError(err) && err.code === (problem.source.includes('exp must be after') ? 'invalid_token' : 'token_expired'));
      }
    });
  }
});

describe('isCanonicalBase64Url', () => {
  const table: Array<[segment: string, canonical: boolean]> = [
    ['AAAA', true],
    ['AA', true], // one byte: 4 padding bits, all zero
    ['AB', false],
    ['AP', false],
    ['AQ', true], // 0x01 → A Q
    ['AAA', true], // two bytes: 2 padding bits
    ['AAB', false],
    ['AAE', true],
    ['AAAAA', false], // a lone 6-bit group encodes no byte
    ['_w', true], // 0xff
    ['_x', false],
  ];
  for (const [segment, canonical] of table) {
    it(`${segment} is ${canonical ? '' : 'not '}canonical`, () => {
      assert.equal(isCanonicalBase64Url(segment), canonical);
      if (canonical) assert.equal(Buffer.from(Buffer.from(segment, 'base64url').toString('base64url')).toString(), segment);
    });
  }

  it('agrees with a round trip through Buffer for every two- and three-character segment', () => {
    for (const a of ALPHABET) for (const b of ALPHABET) {
      for (const segment of [`${a}${b}`, `${a}${b}A`, `${a}${b}Q`, `${a}${b}_`]) {
        assert.equal(isCanonicalBase64Url(segment), Buffer.from(segment, 'base64url').toString('base64url') === segment, segment);
      }
    }
  });
});
