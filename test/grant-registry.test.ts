/** The grant registry: every kind filed under its own name, checks and plans driven by it, and docs generated from it. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { checkGrants, GRANT_KINDS, grantRequestSchema, GRANTS, grantsSchema, planMints, unmintableGrants } from '../src/core/grants.js';
import { GRANT_DOCS_PATH, renderGrantDocs } from '../scripts/write-grant-docs.js';

const NOW = new Date('2026-11-24T08:00:00Z');
const nowSeconds = NOW.getTime() / 1000;

const rule = grantsSchema.parse({
  google: { serviceAccount: 'deployer@acme-prod.iam.gserviceaccount.com', scopes: ['https://www.googleapis.com/auth/cloud-platform'], lifetime: '1h' },
  linkerd: { serviceAccount: 'deploy', namespace: 'ci', lifetime: '24h' },
  token: { audiences: ['https://a.internal', 'https://b.internal'], lifetime: '1h' },
});

describe('grant registry', () => {
  it('files every module under its own kind, in the documented order', () => {
    assert.deepEqual([...GRANT_KINDS], ['google', 'linkerd', 'token']);
    for (const kind of GRANT_KINDS) assert.equal(GRANTS[kind].kind, kind);
  });

  it('checks exactly the requested kinds, in registry order, with each kind\'s own explain text', () => {
    const request = grantRequestSchema.parse({ grants: { token: { audience: 'https://c.internal' }, google: {} } }).grants;
    assert.deepEqual(checkGrants(rule, request), [
      { name: 'google', ok: true, detail: 'impersonate deployer@acme-prod.iam.gserviceaccount.com' },
      { name: 'token', ok: false, detail: 'audience not allowed: https://c.internal; the rule allows https://a.internal, https://b.internal' },
    ]);
    assert.deepEqual(checkGrants({ token: rule.token }, grantRequestSchema.parse({ grants: { linkerd: { csr: 'x' } } }).grants), [
      { name: 'linkerd', ok: false, detail: 'the rule grants no Linkerd identity' },
    ]);
  });

  it('plans every kind no longer than its hard cap and the ID token\'s exp', () => {
    const request = grantRequestSchema.parse({ grants: { google: {}, linkerd: { csr: 'CSR' }, token: {} } }).grants;
    const plans = planMints(rule, request, nowSeconds + 7200, NOW);
    assert.deepEqual(plans.map((plan) => plan.kind), ['google', 'linkerd', 'token']);
    const [google, linkerd, token] = plans;
    assert.equal(google?.kind === 'google' && google.lifetimeSeconds, 3600);
    assert.equal(linkerd?.kind === 'linkerd' && linkerd.notAfter.getTime(), NOW.getTime() + 7200_000, 'the certificate must not outlive the ID token');
    assert.equal(token?.kind === 'token' && token.audience, 'https://a.internal');
    assert.equal(token?.kind === 'token' && token.expiresAt.getTime(), NOW.getTime() + 3600_000);
  });

  it('refuses a grant section or a requested kind it does not know', () => {
    assert.equal(grantsSchema.safeParse({ aws: {} }).success, false);
    assert.equal(grantRequestSchema.safeParse({ grants: { aws: {} } }).success, false);
    assert.equal(grantRequestSchema.safeParse({ grants: {} }).success, false);
  });

  it('names every rule and kind that the configured minters cannot mint, with the config section it needs', () => {
    const rules = [{ name: 'mesh', grant: { linkerd: rule.linkerd } }, { name: 'both', grant: { token: rule.token, google: rule.google } }];
    assert.deepEqual(unmintableGrants(rules, new Set(['token'])), [
      { rule: 'mesh', kind: 'linkerd', configSection: 'linkerd' },
      { rule: 'both', kind: 'google', configSection: 'google' },
    ]);
    assert.deepEqual(unmintableGrants(rules, new Set(GRANT_KINDS)), []);
  });

  it('docs/grants.md is generated from the registry (npm run schemas)', async () => {
    assert.equal(await readFile(GRANT_DOCS_PATH, 'utf8'), renderGrantDocs());
  });
});
