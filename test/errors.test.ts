/** The coded error every refusal is: status and title by code, the retry hint of an outage, and what wraps a bug. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerError, ERROR_STATUS, ERROR_TITLE, asBrokerError, assertNever, isBrokerError, type ErrorCode } from '../src/core/errors.js';

describe('BrokerError', () => {
  it('takes its status from its code, and keeps the detail and reasons', () => {
    const reasons = [{ rule: 'deploy', name: 'ref_protected', detail: 'is false' }];
    const err = new BrokerError('policy_denied', 'no rule matched', { reasons });
    assert.equal(err.name, 'BrokerError');
    assert.equal(err.message, 'policy_denied: no rule matched');
    assert.deepEqual([err.code, err.status, err.detail, err.reasons, err.retryAfter], ['policy_denied', 403, 'no rule matched', reasons, undefined]);
    assert.equal(Object.hasOwn(err, 'cause'), false, 'no cause unless one is given');
    assert.ok(err instanceof Error);
  });

  it('tells the caller of a 503 to retry after 5 seconds unless it says otherwise', () => {
    assert.equal(new BrokerError('upstream_unavailable', 'x').retryAfter, 5);
    assert.equal(new BrokerError('not_ready', 'x', { retryAfter: 30 }).retryAfter, 30);
    assert.equal(new BrokerError('rate_limited', 'x', { retryAfter: 2 }).retryAfter, 2);
    assert.equal(new BrokerError('rate_limited', 'x').retryAfter, undefined);
    assert.equal(new BrokerError('internal_error', 'x').retryAfter, undefined);
  });

  it('keeps a cause for the log', () => {
    const cause = new Error('socket hang up');
    assert.equal(new BrokerError('upstream_unavailable', 'GitLab', { cause }).cause, cause);
  });

  it('has a status and a title of its own for every code', () => {
    const codes = Object.keys(ERROR_STATUS) as ErrorCode[];
    assert.ok(codes.length >= 20);
    for (const code of codes) {
      assert.ok(ERROR_STATUS[code] >= 400 && ERROR_STATUS[code] <= 503, code);
      assert.match(ERROR_TITLE[code], /^[A-Z].{5,}$/, code);
    }
    assert.equal(new Set(Object.values(ERROR_TITLE)).size, codes.length, 'no two codes share a title');
    assert.deepEqual(Object.keys(ERROR_TITLE).sort(), [...codes].sort());
  });
});

describe('asBrokerError', () => {
  it('passes a BrokerError through and turns anything else into internal_error with it as the cause', () => {
    const coded = new BrokerError('token_replayed', 'seen');
    assert.equal(asBrokerError(coded, 'ignored'), coded);
    const bug = new TypeError('x is undefined');
    const wrapped = asBrokerError(bug, 'exchange failed');
    assert.deepEqual([wrapped.code, wrapped.status, wrapped.detail, wrapped.cause], ['internal_error', 500, 'exchange failed', bug]);
    assert.equal(isBrokerError(wrapped), true);
    assert.equal(isBrokerError({ code: 'internal_error', status: 500 }), false);
  });
});

describe('assertNever', () => {
  it('throws a TypeError naming the value', () => {
    assert.throws(() => assertNever('surprise' as never), { name: 'TypeError', message: 'unexpected value: "surprise"' });
  });
});
