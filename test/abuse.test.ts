/**
 * What attacking a running broker found, each guarded at the HTTP level: refusals (and their audit records) that grew
 * with what the caller sent, unauthenticated callers with no budget, and a project budget that replays used up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertDenied, waitForAudit } from './support/assertions.js';
import { startHarness, type CallResult, type Harness } from './support/harness.js';
import { AUDIENCE, CORE_POLICY } from './support/policies.js';

const MAX_REFUSAL_BYTES = 4096;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Thirty more rules that a project-20 caller can see, each failing on `environment`: thirty reasons to repeat. */
const MANY_RULES_POLICY = `${CORE_POLICY}${Array.from(
  { length: 30 },
  (_, index) => `  - name: filler-${index}
    when:
      project_id: "20"
      environment: filler-${index}
    grant:
      token: { audiences: [https://filler.internal] }
`,
).join('')}`;

/** Every string in a JSON value, keys included. */
function strings(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string') found.push(value);
  else if (Array.isArray(value)) for (const item of value) strings(item, found);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      found.push(key);
      strings(item, found);
    }
  }
  return found;
}

/** The raw audit lines of one request. */
async function auditLines(h: Harness, requestId: string): Promise<string[]> {
  await waitForAudit(h, requestId);
  return (await h.auditText()).split('\n').filter((line) => line.includes(`"requestId":"${requestId}"`));
}

/** The refusal and each of its audit lines are under 4 KiB, printable, and repeat no long run of `filler`. */
async function assertBounded(h: Harness, result: CallResult, filler: string): Promise<void> {
  assert.ok(Buffer.byteLength(result.text) < MAX_REFUSAL_BYTES, `the refusal is ${Buffer.byteLength(result.text)} bytes`);
  const lines = await auditLines(h, result.body.requestId as string);
  assert.ok(lines.length > 0, 'no audit record for the refusal');
  for (const line of lines) assert.ok(Buffer.byteLength(line) < MAX_REFUSAL_BYTES, `an audit line is ${Buffer.byteLength(line)} bytes`);
  for (const text of [...strings(result.body), ...lines.flatMap((line) => strings(JSON.parse(line)))]) {
    assert.ok(!UNPRINTABLE.test(text), `unprinted control character in ${JSON.stringify(text.slice(0, 80))}`);
    assert.ok(!text.includes(filler.repeat(65)), 'a caller value is repeated at full length');
  }
}

describe('a refusal and its audit record stay under 4 KiB whatever is sent', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ policy: MANY_RULES_POLICY });
  });
  after(() => h.close());

  it('verifies the token before parsing the body: no token and a 60 KiB unknown grant key is invalid_token, not the key', async () => {
    const result = await h.call('/v1/exchange', { body: `{"grants":{"${'k'.repeat(60 * 1024)}":{}}}` });
    await assertDenied(h, result, 401, 'invalid_token');
    await assertBounded(h, result, 'k');
  });

  const cases: Array<{ name: string; filler: string; status: number; code: string; send: () => Promise<CallResult> }> = [
    {
      name: 'a verified caller with a 60 KiB unknown grant key',
      filler: 'k', status: 400, code: 'invalid_request',
      send: async () => h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: `{"grants":{"${'k'.repeat(60 * 1024)}":{}}}` }),
    },
    {
      name: 'a verified caller with 2,000 unknown grant keys',
      filler: 'g', status: 400, code: 'invalid_request',
      send: async () => h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: { grants: Object.fromEntries(Array.from({ length: 2000 }, (_, index) => [`g${index}ggggggggg`, {}])) } }),
    },
    {
      name: 'a verified caller with a duplicated 30 KiB key',
      filler: 'd', status: 400, code: 'invalid_request',
      send: async () => h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: `{"grants":{"token":{}},"${'d'.repeat(30 * 1024)}":1,"${'d'.repeat(30 * 1024)}":2}` }),
    },
    {
      name: 'an unknown grant key of control characters, escapes and bidi overrides',
      filler: 'c', status: 400, code: 'invalid_request',
      send: async () => h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: { grants: { 'c\u0000\n\u001b[31m\u2028\u202e\u0085': {} } } }),
    },
    {
      name: 'a token whose header has a 600-character parameter name with line breaks',
      filler: 'h', status: 401, code: 'invalid_token',
      send: async () => h.exchange(await h.gitlab.token(AUDIENCE, {}, { header: { [`\n${'h'.repeat(600)}\r\n`]: 1 } })),
    },
    {
      name: 'an Authorization header of 15 KiB garbage',
      filler: 'x', status: 401, code: 'invalid_token',
      send: () => h.exchange('x'.repeat(15 * 1024)),
    },
    {
      name: 'claims of 600 wide and control characters, refused with thirty-three reasons',
      filler: 'é', status: 403, code: 'policy_denied',
      send: async () => h.exchange(await h.gitlab.token(AUDIENCE, {
        environment: `production\n${'é'.repeat(600)}`,
        ref_path: `refs/heads/${'é'.repeat(600)}`,
        project_path: `payments/${'é'.repeat(600)}\u001b`,
        user_login: `${'é'.repeat(600)}\u2028`,
      })),
    },
  ];

  for (const item of cases) {
    it(`${item.name}: ${item.status} ${item.code}, bounded and printable`, async () => {
      const result = await item.send();
      await assertDenied(h, result, item.status, item.code);
      await assertBounded(h, result, item.filler);
    });
  }

  it('explain of the wide claims writes a bounded audit record too', async () => {
    const token = await h.gitlab.token(AUDIENCE, { environment: `production\n${'é'.repeat(600)}`, user_login: 'é'.repeat(600) });
    const result = await h.call('/v1/explain', { token, body: { grants: { token: {} } } });
    assert.equal(result.status, 200, result.text);
    const lines = await auditLines(h, result.headers.get('x-request-id') ?? '');
    assert.equal(lines.length, 1);
    assert.ok(Buffer.byteLength(lines[0] ?? '') < MAX_REFUSAL_BYTES, `the explain record is ${Buffer.byteLength(lines[0] ?? '')} bytes`);
  });
});

describe('failed authentication is limited per client address', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: 'failedAuthPerMinutePerAddress: 3' });
  });
  after(() => h.close());

  it('successful exchanges spend none of the budget', async () => {
    for (let index = 0; index < 5; index++) assert.equal((await h.exchange(await h.gitlab.token(AUDIENCE))).status, 200);
  });

  it('after three failures the address is answered 429 rate_limited with Retry-After, before its token is looked at', async () => {
    for (let index = 0; index < 3; index++) await assertDenied(h, await h.exchange(`not.a.token${index}`), 401, 'invalid_token');
    const valid = await h.gitlab.token(AUDIENCE);
    const limited = await h.exchange(valid);
    await assertDenied(h, limited, 429, 'rate_limited', valid);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1, `Retry-After: ${limited.headers.get('retry-after')}`);
    const [record] = await waitForAudit(h, limited.body.requestId as string);
    assert.equal(record?.client, '127.0.0.1');
    assert.equal(record?.tokenSha256 !== undefined, true);
  });

  it('a forwarded address does not escape the limit while trustProxy is off', async () => {
    const result = await h.call('/v1/explain', { token: 'still.not.valid', body: { grants: { token: {} } }, headers: { 'x-forwarded-for': '198.51.100.7' } });
    assert.equal(result.status, 429, result.text);
    assert.equal(result.body.code, 'rate_limited');
  });
});

describe('the project budget is charged only for requests that reach policy evaluation', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ requestsPerMinutePerProject: 2 });
  });
  after(() => h.close());

  it('ten replays of a spent token and a malformed request leave the budget to a fresh token', async () => {
    const spent = await h.gitlab.token(AUDIENCE);
    assert.equal((await h.exchange(spent)).status, 200);
    for (let index = 0; index < 10; index++) await assertDenied(h, await h.exchange(spent), 409, 'token_replayed', spent);
    await assertDenied(h, await h.call('/v1/exchange', { token: await h.gitlab.token(AUDIENCE), body: { grants: { nope: {} } } }), 400, 'invalid_request');
    const fresh = await h.exchange(await h.gitlab.token(AUDIENCE));
    assert.equal(fresh.status, 200, fresh.text);
  });

  it('over budget: 429 rate_limited with Retry-After, and the jti is released for a retry', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    const limited = await h.exchange(token);
    await assertDenied(h, limited, 429, 'rate_limited', token);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    await assertDenied(h, await h.exchange(token), 429, 'rate_limited', token); // not token_replayed
  });
});
