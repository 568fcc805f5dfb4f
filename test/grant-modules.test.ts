/**
 * Each grant module on its own, and the registry functions that refresh and the CLI use: policy and request sections,
 * checks and their explain texts, plans, what a refresh session keeps and allows, audit summaries, and the files and
 * environment the CLI writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  GRANTS, HARD_CAP_SECONDS, grantExpiry, grantRequestSchema, grantsSchema, isGrantKind, narrowToSession, planMints, requestedKinds, sessionScopes,
} from '../src/core/grants.js';
import { lifetimeSchema } from '../src/core/grants/module.js';

const NOW = new Date('2026-11-24T08:00:00.900Z');
const NOW_SECONDS = Math.floor(NOW.getTime() / 1000);
const EXPIRES = new Date('2026-11-24T08:10:00Z');
const expiry = { seconds: 600, at: EXPIRES };
const hash = (text: string): string => `sha256(${text})`;
const { google, linkerd, token } = GRANTS;

const googleRule = google.policySchema.parse({ serviceAccount: 'deployer@acme-prod.iam.gserviceaccount.com', scopes: ['https://s.example/a', 'https://s.example/b'] });
const linkerdRule = linkerd.policySchema.parse({ serviceAccount: 'deploy', namespace: 'ci' });
const tokenRule = token.policySchema.parse({ audiences: ['https://a.internal', 'https://b.internal'] });

describe('rule lifetimes', () => {
  const schema = lifetimeSchema(3600, '15m');
  it('default, read as seconds, up to the kind\'s maximum', () => {
    assert.equal(schema.parse(undefined), 900);
    assert.equal(schema.parse('1h'), 3600);
    assert.equal(schema.parse('59m60s'), 3600);
  });
  it('refuse more than the maximum and what is not a duration, naming the maximum in minutes', () => {
    for (const text of ['3601s', '1h1s', '2h', 'an hour', '0s']) {
      const parsed = schema.safeParse(text);
      assert.equal(parsed.success, false, text);
      assert.equal(parsed.error?.issues[0]?.message, 'must be a duration like 15m, at most 60 minutes');
    }
  });
  it('each kind has its own default and cap', () => {
    assert.equal(googleRule.lifetime, 900);
    assert.equal(linkerdRule.lifetime, 3600);
    assert.equal(tokenRule.lifetime, 600);
    assert.equal(linkerd.policySchema.safeParse({ serviceAccount: 'a', namespace: 'b', lifetime: '24h' }).success, true);
    assert.equal(linkerd.policySchema.safeParse({ serviceAccount: 'a', namespace: 'b', lifetime: '24h1s' }).success, false);
    assert.equal(token.policySchema.safeParse({ audiences: ['x'], lifetime: '61m' }).success, false);
    assert.deepEqual(HARD_CAP_SECONDS, { google: 3600, linkerd: 86400, token: 3600 });
  });
  it('only google calls an outside system to mint (its mint runs under the request deadline)', () => {
    assert.deepEqual([google.mintsUpstream, linkerd.mintsUpstream, token.mintsUpstream], [true, false, false]);
  });
});

describe('policy sections', () => {
  const googleWith = (fields: Record<string, unknown>) => google.policySchema.safeParse({ serviceAccount: 'deployer@acme-prod.iam.gserviceaccount.com', scopes: ['https://s.example/a'], ...fields }).success;
  it('google: a service account e-mail, https scopes, delegates and a Spanner role by their forms', () => {
    assert.equal(googleWith({}), true);
    assert.equal(googleWith({ serviceAccount: 'robot-123@developer.gserviceaccount.com' }), true);
    for (const serviceAccount of ['deployer@acme-prod.iam.gserviceaccount.com.evil', 'evil@acme-prod.iam.gserviceaccount.com\n', 'x y@developer.gserviceaccount.com', '@developer.gserviceaccount.com', 'a@b@developer.gserviceaccount.com', 'deployer@ACME.iam.gserviceaccount.com', 'deployer@gmail.com']) {
      assert.equal(googleWith({ serviceAccount }), false, serviceAccount);
    }
    assert.equal(google.policySchema.safeParse({ serviceAccount: 'me@gmail.com', scopes: ['https://s.example/a'] }).error?.issues[0]?.message, 'must be a Google service account email');
    for (const scope of ['http://s.example/a', 'httpsx://s.example/a', 'xhttps://s.example/a']) assert.equal(googleWith({ scopes: [scope] }), false, scope);
    assert.equal(googleWith({ scopes: [] }), false);
    assert.equal(googleWith({ delegates: ['other-sa@acme-prod.iam.gserviceaccount.com'] }), true);
    assert.equal(googleWith({ delegates: ['someone@example.com'] }), false);
    assert.equal(googleWith({ spannerDatabaseRole: 'reader_1' }), true);
    for (const role of ['1reader', 'read-er', `r${'a'.repeat(128)}`]) assert.equal(googleWith({ spannerDatabaseRole: role }), false, role);
    assert.equal(googleWith({ extra: 1 }), false);
  });
  it('linkerd: lower-case DNS labels of at most 63 characters', () => {
    const ok = (serviceAccount: string) => linkerd.policySchema.safeParse({ serviceAccount, namespace: 'ci' }).success;
    for (const label of ['a', 'deploy', 'a-b', 'a'.repeat(63)]) assert.equal(ok(label), true, label);
    for (const label of ['', '-a', 'a-', 'A', 'a.b', 'a'.repeat(64)]) assert.equal(ok(label), false, label);
  });
  it('token: one to twenty audiences', () => {
    assert.equal(token.policySchema.safeParse({ audiences: [] }).success, false);
    assert.equal(token.policySchema.safeParse({ audiences: [''] }).success, false);
  });
  it('a rule grants at least one kind, and says which kinds there are', () => {
    const parsed = grantsSchema.safeParse({});
    assert.equal(parsed.error?.issues[0]?.message, 'a rule must grant at least one of google, linkerd, token');
  });
});

describe('request sections', () => {
  it('name the kinds asked for, in registry order', () => {
    assert.deepEqual(requestedKinds(grantRequestSchema.parse({ grants: { token: {}, google: {} } }).grants), ['google', 'token']);
    assert.equal(grantRequestSchema.safeParse({ grants: {} }).error?.issues[0]?.message, 'ask for at least one grant');
  });
  it('refuse empty and oversized values', () => {
    assert.equal(linkerd.requestSchema.safeParse({ csr: '' }).success, false);
    assert.equal(linkerd.requestSchema.safeParse({ csr: 'x'.repeat(16 * 1024) }).success, true);
    assert.equal(linkerd.requestSchema.safeParse({ csr: 'x'.repeat(16 * 1024 + 1) }).success, false);
    assert.equal(token.requestSchema.safeParse({ audience: '' }).success, false);
    assert.equal(google.requestSchema.safeParse({ scopes: [] }).success, false);
  });
  it('know their kinds and nothing inherited', () => {
    for (const kind of ['google', 'linkerd', 'token']) assert.equal(isGrantKind(kind), true);
    for (const kind of ['aws', 'toString', '__proto__', 'hasOwnProperty']) assert.equal(isGrantKind(kind), false, kind);
  });
});

describe('checks and plans', () => {
  it('google: every requested scope must be the rule\'s, and the plan carries the rule\'s delegates and role', () => {
    assert.deepEqual(google.check(undefined, {}), { ok: false, detail: 'the rule grants no Google access' });
    assert.deepEqual(google.check(googleRule, { scopes: ['https://s.example/b'] }), { ok: true, detail: 'impersonate deployer@acme-prod.iam.gserviceaccount.com' });
    assert.deepEqual(google.check(googleRule, { scopes: ['https://s.example/a', 'https://x/1', 'https://x/2'] }), {
      ok: false, detail: 'scopes not allowed: https://x/1, https://x/2; the rule allows https://s.example/a, https://s.example/b',
    });
    assert.deepEqual(google.plan(googleRule, {}, expiry), {
      kind: 'google', serviceAccount: 'deployer@acme-prod.iam.gserviceaccount.com', scopes: ['https://s.example/a', 'https://s.example/b'], delegates: [], lifetimeSeconds: 600, expiresAt: EXPIRES,
    });
    const withRole = { ...googleRule, delegates: ['d@p.iam.gserviceaccount.com'], spannerDatabaseRole: 'reader' };
    assert.deepEqual(google.plan(withRole, { scopes: ['https://s.example/b'] }, expiry), {
      kind: 'google', serviceAccount: 'deployer@acme-prod.iam.gserviceaccount.com', scopes: ['https://s.example/b'], delegates: ['d@p.iam.gserviceaccount.com'], lifetimeSeconds: 600, expiresAt: EXPIRES, spannerDatabaseRole: 'reader',
    });
  });
  it('linkerd: the identity comes from the rule, the CSR from the request', () => {
    assert.deepEqual(linkerd.check(undefined, { csr: 'CSR' }), { ok: false, detail: 'the rule grants no Linkerd identity' });
    assert.deepEqual(linkerd.check(linkerdRule, { csr: 'CSR' }), { ok: true, detail: 'identity deploy.ci' });
    assert.deepEqual(linkerd.plan(linkerdRule, { csr: 'CSR' }, expiry), { kind: 'linkerd', serviceAccount: 'deploy', namespace: 'ci', csr: 'CSR', notAfter: EXPIRES });
  });
  it('token: the requested audience if the rule lists it, else the rule\'s first', () => {
    assert.deepEqual(token.check(undefined, {}), { ok: false, detail: 'the rule grants no broker token' });
    assert.deepEqual(token.check(tokenRule, {}), { ok: true, detail: 'audience https://a.internal' });
    assert.deepEqual(token.check(tokenRule, { audience: 'https://b.internal' }), { ok: true, detail: 'audience https://b.internal' });
    assert.deepEqual(token.plan(tokenRule, {}, expiry), { kind: 'token', audience: 'https://a.internal', expiresAt: EXPIRES });
    assert.deepEqual(token.plan(tokenRule, { audience: 'https://b.internal' }, expiry), { kind: 'token', audience: 'https://b.internal', expiresAt: EXPIRES });
  });
  it('expiry: the least of rule, hard cap and ID token, in whole seconds, never negative', () => {
    assert.deepEqual(grantExpiry(NOW, 600, 'token', NOW_SECONDS + 7200), { seconds: 600, at: new Date((NOW_SECONDS + 600) * 1000) });
    assert.deepEqual(grantExpiry(NOW, 7200, 'google', NOW_SECONDS + 7200), { seconds: 3600, at: new Date((NOW_SECONDS + 3600) * 1000) });
    assert.deepEqual(grantExpiry(NOW, 600, 'linkerd', NOW_SECONDS + 30), { seconds: 30, at: new Date((NOW_SECONDS + 30) * 1000) });
    assert.deepEqual(grantExpiry(NOW, 600, 'linkerd', NOW_SECONDS - 30), { seconds: 0, at: new Date(NOW_SECONDS * 1000) });
  });
  it('plans only the kinds both asked for and granted', () => {
    const request = grantRequestSchema.parse({ grants: { google: {}, token: {} } }).grants;
    assert.deepEqual(planMints({ token: tokenRule, linkerd: linkerdRule }, request, NOW_SECONDS + 7200, NOW).map((plan) => plan.kind), ['token']);
  });
});

describe('refresh sessions', () => {
  it('keep the scopes, the audience, and nothing of a linkerd identity', () => {
    const plans = planMints({ google: googleRule, linkerd: linkerdRule, token: tokenRule }, grantRequestSchema.parse({ grants: { google: { scopes: ['https://s.example/a'] }, linkerd: { csr: 'C' }, token: {} } }).grants, NOW_SECONDS + 7200, NOW);
    assert.deepEqual(sessionScopes(plans), { google: { scopes: ['https://s.example/a'] }, linkerd: {}, token: { audience: 'https://a.internal' } });
    assert.deepEqual(sessionScopes([]), {});
  });
  it('google: defaults to the granted scopes; refuses others, and reads only string scopes', () => {
    const scope = { scopes: ['https://s.example/a', 7] };
    assert.deepEqual(google.withinSession(scope, {}), { request: { scopes: ['https://s.example/a'] } });
    assert.deepEqual(google.withinSession(scope, { scopes: ['https://s.example/a'] }), { request: { scopes: ['https://s.example/a'] } });
    assert.deepEqual(google.withinSession(scope, { scopes: ['https://s.example/a', 'https://s.example/b', 'https://x'] }), { refused: 'the original exchange did not grant the scopes https://s.example/b, https://x' });
    assert.deepEqual(google.withinSession({ scopes: 'https://s.example/a' }, { scopes: ['https://s.example/a'] }), { refused: 'the original exchange did not grant the scopes https://s.example/a' });
    assert.deepEqual(google.withinSession({}, {}), { request: { scopes: [] } }, 'a session that kept no scopes grants none');
  });
  it('token: defaults to the granted audience; refuses another, or any when none was kept', () => {
    const scope = { audience: 'https://a.internal' };
    assert.deepEqual(token.withinSession(scope, {}), { request: { audience: 'https://a.internal' } });
    assert.deepEqual(token.withinSession(scope, { audience: 'https://a.internal' }), { request: { audience: 'https://a.internal' } });
    assert.deepEqual(token.withinSession(scope, { audience: 'https://b.internal' }), { refused: 'the original exchange did not grant the audience https://b.internal' });
    assert.deepEqual(token.withinSession({ audience: 5 }, {}), { refused: 'the original exchange did not grant the audience (none)' });
    assert.deepEqual(token.withinSession({}, {}), { refused: 'the original exchange did not grant the audience (none)' });
    assert.deepEqual(token.withinSession({}, { audience: 'https://a.internal' }), { refused: 'the original exchange did not grant the audience https://a.internal' });
  });
  it('linkerd: a new CSR for the same identity', () => {
    assert.deepEqual(linkerd.withinSession({}, { csr: 'NEW' }), { request: { csr: 'NEW' } });
  });
  it('narrow a refresh to the session, refusing kinds it did not grant and more than it granted', () => {
    const scopes = { google: { scopes: ['https://s.example/a'] }, linkerd: {} };
    const request = grantRequestSchema.parse({ grants: { google: {}, linkerd: { csr: 'C' } } }).grants;
    assert.deepEqual(narrowToSession(scopes, request), { request: { google: { scopes: ['https://s.example/a'] }, linkerd: { csr: 'C' } }, refused: [] });
    const more = grantRequestSchema.parse({ grants: { google: { scopes: ['https://s.example/b'] }, token: {} } }).grants;
    assert.deepEqual(narrowToSession(scopes, more), {
      request: {},
      refused: [
        { name: 'google', ok: false, detail: 'the original exchange did not grant the scopes https://s.example/b' },
        { name: 'token', ok: false, detail: 'the original exchange did not grant token' },
      ],
    });
  });
});

describe('audit summaries', () => {
  it('keep a hash and metadata, never the credential', () => {
    assert.deepEqual(token.auditSummary({ token: 'T', expiresAt: EXPIRES }, hash), { kind: 'token', expiresAt: EXPIRES, sha256: 'sha256(T)' });
    const access = { accessToken: 'A', expiresAt: EXPIRES, serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: ['https://s'] };
    assert.deepEqual(google.auditSummary(access, hash), { kind: 'google', serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: ['https://s'], expiresAt: EXPIRES, sha256: 'sha256(A)' });
    assert.deepEqual(google.auditSummary({ ...access, spannerDatabaseRole: 'reader' }, hash), {
      kind: 'google', serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: ['https://s'], expiresAt: EXPIRES, sha256: 'sha256(A)', spannerDatabaseRole: 'reader',
    });
    const certificate = { certificate: 'C', chain: 'CH', trustAnchors: 'TA', identity: 'deploy.ci', spiffeId: 'spiffe://x', serialNumber: '01', expiresAt: EXPIRES };
    assert.deepEqual(linkerd.auditSummary(certificate, hash), { kind: 'linkerd', identity: 'deploy.ci', spiffeId: 'spiffe://x', serialNumber: '01', expiresAt: EXPIRES });
  });
});

describe('the CLI side', () => {
  it('builds each kind\'s request from its argument and the job\'s CSR', () => {
    assert.deepEqual(token.cli.request('https://b.internal', {}), { audience: 'https://b.internal' });
    assert.deepEqual(token.cli.request(undefined, {}), {});
    assert.deepEqual(token.cli.request('', {}), {});
    assert.deepEqual(google.cli.request(undefined, {}), {});
    assert.deepEqual(linkerd.cli.request(undefined, { csrPem: 'CSR' }), { csr: 'CSR' });
    assert.equal(token.cli.argument, 'AUDIENCE');
    assert.equal(google.cli.argument, undefined);
    assert.equal(linkerd.cli.needsKeyPair, true);
  });

  it('token: the JWT in a private file, its path and expiry in the environment', () => {
    const granted = { token: 'JWT', expiresAt: '2026-11-24T08:10:00.000Z', audience: 'ignored' };
    assert.deepEqual(token.cli.output(granted, {}, '/out'), {
      files: [{ path: '/out/broker-token', content: 'JWT', mode: 0o600 }],
      env: [['BROKER_TOKEN_FILE', '/out/broker-token'], ['BROKER_TOKEN_EXPIRES_AT', '2026-11-24T08:10:00.000Z']],
    });
    assert.equal(token.cli.responseSchema.safeParse({ token: '', expiresAt: 'x' }).success, false);
  });

  it('google: the access token in a private file and the environment, with the Spanner role when there is one', () => {
    const granted = { accessToken: 'AT', expiresAt: '2026-11-24T08:10:00.000Z', serviceAccount: 'sa@p.iam.gserviceaccount.com', scopes: ['https://www.googleapis.com/auth/cloud-platform'] };
    const env = [
      ['GOOGLE_OAUTH_ACCESS_TOKEN', 'AT'], ['CLOUDSDK_AUTH_ACCESS_TOKEN_FILE', '/out/google-access-token'], ['GOOGLE_SERVICE_ACCOUNT', 'sa@p.iam.gserviceaccount.com'],
      ['GOOGLE_ACCESS_TOKEN_EXPIRES_AT', '2026-11-24T08:10:00.000Z'],
    ];
    const files = [{ path: '/out/google-access-token', content: 'AT', mode: 0o600 }];
    assert.deepEqual(google.cli.output(granted, {}, '/out'), { files, env });
    assert.deepEqual(google.cli.output({ ...granted, spannerDatabaseRole: 'reader' }, {}, '/out'), { files, env: [...env, ['SPANNER_DATABASE_ROLE', 'reader']] });
    assert.equal(google.cli.responseSchema.safeParse({ ...granted, accessToken: '' }).success, false);
    assert.equal(google.cli.responseSchema.safeParse({ ...granted, spannerDatabaseRole: 'x;DROP' }).success, false);
  });

  it('linkerd: the leaf with its chain, the job\'s key (private) and the trust anchors; nothing without the key', () => {
    const granted = { certificate: 'LEAF\n', chain: 'ISSUER\n', trustAnchors: 'ROOT\n', identity: 'deploy.ci.x', spiffeId: 'spiffe://x/ns/ci/sa/deploy', serialNumber: '01', expiresAt: '2026-11-24T08:10:00.000Z' };
    assert.deepEqual(linkerd.cli.output(granted, { privateKeyPem: 'KEY\n' }, '/out'), {
      files: [
        { path: '/out/linkerd/tls.crt', content: 'LEAF\nISSUER\n', mode: 0o644 },
        { path: '/out/linkerd/tls.key', content: 'KEY\n', mode: 0o600 },
        { path: '/out/linkerd/ca.crt', content: 'ROOT\n', mode: 0o644 },
      ],
      env: [
        ['LINKERD_IDENTITY', 'deploy.ci.x'], ['LINKERD_SPIFFE_ID', 'spiffe://x/ns/ci/sa/deploy'], ['LINKERD_TLS_CERT_FILE', '/out/linkerd/tls.crt'],
        ['LINKERD_TLS_KEY_FILE', '/out/linkerd/tls.key'], ['LINKERD_CA_FILE', '/out/linkerd/ca.crt'], ['LINKERD_CERT_EXPIRES_AT', '2026-11-24T08:10:00.000Z'],
      ],
    });
    assert.deepEqual(linkerd.cli.output(granted, {}, '/out'), { files: [], env: [] });
    assert.equal(linkerd.cli.responseSchema.safeParse({ ...granted, certificate: '' }).success, false);
    assert.equal(linkerd.cli.responseSchema.safeParse({ ...granted, trustAnchors: '' }).success, false);
  });
});
