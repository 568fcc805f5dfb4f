/** Refresh sessions (core/session.ts): what a session token carries, and what its payload must look like to be read back. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBrokerError } from '../src/core/errors.js';
import { GRANT_KINDS } from '../src/core/grants.js';
import { parseSession, SESSION_TYPE, sessionAudience, sessionClaims, type Session } from '../src/core/session.js';
import { principalOf, PRINCIPAL_AUDIENCE } from './support/principals.js';

const principal = principalOf({}, new Date('2026-01-01T00:00:00Z'));
const session: Session = {
  requestId: 'req-0001',
  rule: 'payments-deploy',
  grants: { token: { audience: 'https://vault.example.com', ttlSeconds: 600 } },
  principal,
};
/** The payload as the signer writes it and the verifier reads it: through JSON. */
const payloadOf = (value: Session): Record<string, unknown> => JSON.parse(JSON.stringify(sessionClaims(value))) as Record<string, unknown>;

function refusal(payload: unknown): string {
  try {
    parseSession(payload);
  } catch (err) {
    assert.ok(isBrokerError(err), String(err));
    assert.equal(err.code, 'invalid_token');
    return err.detail;
  }
  return assert.fail('accepted');
}

describe('session tokens', () => {
  it('have their own type and the refresh endpoint as audience, however the issuer ends', () => {
    assert.equal(SESSION_TYPE, 'oidc-broker-session+jwt');
    for (const issuer of ['https://broker.example.com', 'https://broker.example.com/', 'https://broker.example.com///']) {
      assert.equal(sessionAudience(issuer), 'https://broker.example.com/v1/refresh');
    }
    assert.equal(sessionAudience('https://example.com/broker/'), 'https://example.com/broker/v1/refresh');
  });

  it('carry the job as subject, the request, rule, grants and caller, and read back to the same session', () => {
    const claims = sessionClaims(session);
    assert.deepEqual(Object.keys(claims).sort(), ['grants', 'principal', 'rid', 'rule', 'sub']);
    assert.equal(claims['sub'], 'project:20:job:302');
    assert.equal(claims['rid'], 'req-0001');
    assert.equal(claims['rule'], 'payments-deploy');
    assert.equal(claims['grants'], session.grants);
    assert.equal(claims['principal'], principal);
    const read = parseSession({ ...payloadOf(session), iss: 'https://broker.example.com', exp: principal.exp });
    assert.deepEqual(read, session);
    assert.equal(read.principal.aud, PRINCIPAL_AUDIENCE);
  });

  it('accepts every grant kind and the longest request id and rule name', () => {
    const grants = Object.fromEntries(GRANT_KINDS.map((kind) => [kind, { kind }]));
    const read = parseSession({ ...payloadOf(session), grants, rid: 'r'.repeat(64), rule: 'n'.repeat(256) });
    assert.deepEqual(Object.keys(read.grants), [...GRANT_KINDS]);
    assert.equal(read.requestId.length, 64);
    assert.equal(read.rule.length, 256);
  });

  it('refuses a malformed payload as invalid_token', () => {
    const good = payloadOf(session);
    const malformed: unknown[] = [
      null, 'session', [good],
      { ...good, rid: undefined }, { ...good, rid: '' }, { ...good, rid: 'r'.repeat(65) }, { ...good, rid: 7 },
      { ...good, rule: undefined }, { ...good, rule: '' }, { ...good, rule: 'n'.repeat(257) },
      { ...good, grants: undefined }, { ...good, grants: { vault: {} } }, { ...good, grants: { token: 'all' } }, { ...good, grants: [] },
      { ...good, principal: undefined }, { ...good, principal: 'alice' },
      { ...good, principal: { ...(good['principal'] as object), aud: undefined } },
      { ...good, principal: { ...(good['principal'] as object), aud: ['https://broker.example.com'] } },
    ];
    for (const payload of malformed) assert.equal(refusal(payload), 'the session token is malformed', JSON.stringify(payload));
  });

  it('re-checks the caller it carries as an ID token payload', () => {
    const good = payloadOf(session);
    assert.equal(refusal({ ...good, principal: { ...(good['principal'] as object), ref_type: 'merge' } }), 'claim ref_type must be branch or tag');
    assert.equal(refusal({ ...good, principal: { ...(good['principal'] as object), exp: undefined } }), 'claim exp must be a NumericDate');
  });
});
