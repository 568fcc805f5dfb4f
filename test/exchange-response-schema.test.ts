/**
 * The schemas the CLI reads broker answers through, on their own (test/exchange-response.test.ts holds the real
 * server's answers to them): what they refuse, what they strip, and the JSON path their first issue names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { exchangeResponseSchema, explainResponseSchema, firstIssue, problemSchema } from '../src/core/exchange-response.js';
import { missingFieldText } from '../src/core/json-path.js';

const AT = '2026-11-24T08:10:00.000Z';
const exchange = {
  requestId: 'req-1', rule: 'deploy',
  subject: { project_path: 'payments/api', project_id: '20', pipeline_id: '574', job_id: '302', ref_path: 'refs/heads/main', sha: 'abc', environment: 'production', user_login: 'alice' },
  approvals: { deployment: [{ user: 'bob', at: AT }], mergeRequest: { iid: 7, approvedBy: ['carol'] } },
  grants: {
    google: { accessToken: 'AT', expiresAt: AT, serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: ['https://s'], spannerDatabaseRole: 'reader' },
    linkerd: { certificate: 'C', chain: '', trustAnchors: 'TA', identity: 'i', spiffeId: 's', serialNumber: '01', expiresAt: AT },
    token: { token: 'JWT', expiresAt: AT },
  },
  session: { token: 'S', expiresAt: AT },
};

/** The first issue's text for `value` with `change` applied at `path`. */
function issueWith(path: readonly string[], change: unknown): string {
  const copy = structuredClone(exchange) as Record<string, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
  at[path.at(-1) as string] = change;
  const parsed = exchangeResponseSchema.safeParse(copy, { error: missingFieldText });
  assert.equal(parsed.success, false, path.join('.'));
  return parsed.success ? '' : firstIssue(parsed.error);
}

describe('exchange answers', () => {
  it('parse whole, and without the optional parts', () => {
    assert.deepEqual(exchangeResponseSchema.parse(exchange), exchange);
    const bare = { requestId: 'r', rule: 'x', subject: { ...exchange.subject, environment: undefined }, approvals: {}, grants: {} };
    assert.deepEqual(exchangeResponseSchema.parse(bare), bare);
  });

  it('strip fields a newer broker may add', () => {
    assert.deepEqual(exchangeResponseSchema.parse({ ...exchange, extra: 1, grants: { ...exchange.grants, token: { ...exchange.grants.token, audience: 'x' } } }), exchange);
  });

  it('refuse an empty or missing credential, an unreadable time, and a fractional merge request', () => {
    assert.equal(issueWith(['grants', 'token', 'token'], ''), 'grants.token.token: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['grants', 'google', 'accessToken'], ''), 'grants.google.accessToken: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['grants', 'linkerd', 'certificate'], ''), 'grants.linkerd.certificate: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['grants', 'linkerd', 'trustAnchors'], ''), 'grants.linkerd.trustAnchors: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['grants', 'linkerd', 'serialNumber'], undefined), 'grants.linkerd.serialNumber: is missing');
    assert.equal(issueWith(['grants', 'token', 'expiresAt'], 'tomorrow'), 'grants.token.expiresAt: must be an ISO 8601 time');
    assert.equal(issueWith(['grants', 'google', 'expiresAt'], 'soon'), 'grants.google.expiresAt: must be an ISO 8601 time');
    assert.equal(issueWith(['grants', 'linkerd', 'expiresAt'], ''), 'grants.linkerd.expiresAt: must be an ISO 8601 time');
    assert.equal(issueWith(['session', 'expiresAt'], 'later'), 'session.expiresAt: must be an ISO 8601 time');
    assert.equal(issueWith(['session', 'token'], ''), 'session.token: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['approvals', 'mergeRequest', 'iid'], 1.5), 'approvals.mergeRequest.iid: Invalid input: expected int, received number');
    assert.equal(issueWith(['requestId'], ''), 'requestId: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['rule'], ''), 'rule: Too small: expected string to have >=1 characters');
    assert.equal(issueWith(['subject', 'user_login'], undefined), 'subject.user_login: is missing');
  });

  it('refuse a grant kind no module registers, naming it and the kinds read; other faults of grants keep their own text', () => {
    assert.equal(issueWith(['grants', 'aws'], { token: 'X', expiresAt: AT }), 'grants: not a grant kind this CLI reads: aws (it reads google, linkerd, token)');
    const twoUnknown = exchangeResponseSchema.safeParse({ ...exchange, grants: { ...exchange.grants, aws: {}, azure: {} } });
    assert.equal(twoUnknown.success ? '' : firstIssue(twoUnknown.error), 'grants: not a grant kind this CLI reads: aws, azure (it reads google, linkerd, token)');
    assert.equal(issueWith(['grants'], 'all'), 'grants: Invalid input: expected object, received string');
    assert.equal(issueWith(['grants'], undefined), 'grants: is missing');
  });
});

describe('explain answers and refusals', () => {
  it('parse with their checks, and name the first wrong field', () => {
    const explain = {
      allowed: false, rule: null, code: 'policy_denied',
      evaluations: [{ rule: 'deploy', applies: false, conditions: [{ name: 'ref_protected', expected: '"true"', actual: null, ok: false }], requirements: [{ name: 'jobRunning', ok: true, detail: 'running' }], grants: [] }],
    };
    assert.deepEqual(explainResponseSchema.parse(explain), explain);
    const parsed = explainResponseSchema.safeParse({ ...explain, evaluations: [{ ...explain.evaluations[0], requirements: [{ name: 'x', ok: 'yes', detail: '' }] }] });
    assert.equal(parsed.success ? '' : firstIssue(parsed.error), 'evaluations[0].requirements[0].ok: Invalid input: expected boolean, received string');
  });

  it('a problem+json refusal with and without reasons', () => {
    const problem = { type: 'about:blank', title: 'No policy rule allows this pipeline', status: 403, code: 'policy_denied', detail: 'd', requestId: 'r' };
    assert.deepEqual(problemSchema.parse(problem), problem);
    const reasons = [{ rule: 'deploy', name: 'ref_protected', detail: 'is false' }];
    assert.deepEqual(problemSchema.parse({ ...problem, reasons }), { ...problem, reasons });
    assert.equal(problemSchema.safeParse({ ...problem, status: 403.5 }).success, false);
  });

  it('a first issue at the top level, or no issue at all', () => {
    const parsed = problemSchema.safeParse('not an object');
    assert.equal(parsed.success ? '' : firstIssue(parsed.error), '(top level): Invalid input: expected object, received string');
    assert.equal(firstIssue(new z.ZodError([])), 'invalid');
  });
});
