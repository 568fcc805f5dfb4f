/**
 * Approval bypass by shadowing: an earlier rule that can match whatever a later rule matches and grants the same with
 * weaker requirements is an error of `policy check` (accepted knowingly with --allow-shadowing).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { compilePolicy } from '../src/core/policy/compile.js';
import { decide, preEvaluate } from '../src/core/policy/evaluate.js';
import { lintPolicy } from '../src/core/policy/lint.js';
import { principalOf } from './support/principals.js';

const DEPLOY = 'https://deploy-api.internal';

/** Two rules: `earlier` first, then the approval-gated production rule; each side given as YAML flow mappings. */
function pair(earlier: { when: string; require?: string; grant?: string; issuer?: string }, later: { when?: string; require?: string; grant?: string } = {}) {
  return compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: broad
${earlier.issuer ? `    issuer: ${earlier.issuer}\n` : ''}    when: ${earlier.when}
    require: ${earlier.require ?? '{ jobRunning: false }'}
    grant: ${earlier.grant ?? `{ token: { audiences: [${DEPLOY}] } }`}
  - name: production
    when: ${later.when ?? '{ project_id: "20", environment: production, ref_path: refs/heads/main }'}
    require: ${later.require ?? '{ deploymentApprovals: { min: 2 } }'}
    grant: ${later.grant ?? `{ token: { audiences: [${DEPLOY}, https://other.internal] } }`}
`) }]);
}

const bypassOf = (policy: ReturnType<typeof pair>, allowShadowing = false) =>
  lintPolicy(policy, { allowShadowing }).filter((finding) => /can be bypassed/.test(finding.message));

describe('approval bypass by shadowing', () => {
  it('the reported scenario: a broad rule before an approval-gated one grants the same audience without approvals', () => {
    const policy = pair({ when: '{ project_id: "20" }' });
    // What the finding is about: the broad rule really does mint the production audience without any approval.
    const principal = principalOf();
    const decision = decide(preEvaluate(policy, principal, { token: { audience: DEPLOY } }), { approvals: {} }, new Date());
    assert.equal(decision.allowed && decision.rule.name, 'broad');

    const findings = bypassOf(policy);
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.severity, 'error');
    assert.equal(findings[0]?.rule, 'production');
    assert.match(findings[0]?.message ?? '', new RegExp(`rule broad comes first.*token audience ${DEPLOY} with weaker requirements \\(jobRunning off; no deployment approvals \\(the later rule needs 2\\)\\)`));
  });

  it('is reported as accepted, not as an error, with --allow-shadowing', () => {
    assert.deepEqual(bypassOf(pair({ when: '{ project_id: "20" }' }), true).map((finding) => finding.severity), ['accepted']);
  });

  const reported: Array<[what: string, earlier: { when: string; require?: string; grant?: string; issuer?: string }, later?: { when?: string; require?: string; grant?: string }]> = [
    ['fewer approvals', { when: '{ project_id: "20" }', require: '{ deploymentApprovals: { min: 1 } }' }],
    ['approvals from anyone where the later rule names groups', { when: '{ project_id: "20" }', require: '{ deploymentApprovals: { min: 2 } }' }, { require: '{ deploymentApprovals: { min: 2, fromGroups: [payments/release] } }' }],
    ['merge-request approvals without freshness', { when: '{ project_id: "20" }', require: '{ mergeRequestApprovals: { min: 1, fresh: false } }' }, { require: '{ mergeRequestApprovals: { min: 1 } }' }],
    ['sameProject off, same conditions otherwise', { when: '{ project_id: "20", environment: production, ref_path: refs/heads/main }', require: '{ sameProject: false, deploymentApprovals: { min: 2 } }' }],
    ['a list that holds the later exact value', { when: '{ project_id: ["20", "21"], environment: [staging, production] }' }],
    ['a glob that matches the later exact value', { when: '{ project_id: "20", environment: { glob: "prod*" } }' }],
    ['a glob that contains the later glob', { when: '{ project_id: "20", environment: { glob: "review/*" } }' }, { when: '{ project_id: "20", environment: { glob: "review/feature-*" } }' }],
    ['a regex against a different regex (undecided, so reported)', { when: '{ project_id: "20", ref_path: { regex: "refs/heads/.+" } }' }, { when: '{ project_id: "20", ref_path: { regex: "refs/heads/(main|release)" } }' }],
    ['the same Linkerd identity', { when: '{ project_id: "20" }', grant: '{ linkerd: { serviceAccount: deploy, namespace: payments } }' }, { grant: '{ linkerd: { serviceAccount: deploy, namespace: payments } }' }],
    ['the same Google service account', { when: '{ project_id: "20" }', grant: '{ google: { serviceAccount: deployer@p.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/cloud-platform] } }' }, { grant: '{ google: { serviceAccount: deployer@p.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/cloud-platform] } }' }],
  ];
  for (const [what, earlier, later] of reported) {
    it(`reports ${what}`, () => assert.deepEqual(bypassOf(pair(earlier, later)).map((finding) => finding.rule), ['production']));
  }

  const clean: Array<[what: string, earlier: { when: string; require?: string; grant?: string; issuer?: string }, later?: { when?: string; require?: string; grant?: string }]> = [
    ['another audience', { when: '{ project_id: "20" }', grant: '{ token: { audiences: [https://review.internal] } }' }],
    ['another Linkerd identity', { when: '{ project_id: "20" }', grant: '{ linkerd: { serviceAccount: review, namespace: payments } }' }, { grant: '{ linkerd: { serviceAccount: deploy, namespace: payments } }' }],
    ['another project', { when: '{ project_id: "21" }' }],
    ['another environment', { when: '{ project_id: "20", environment: staging }' }],
    ['a claim the later rule leaves open', { when: '{ project_id: "20", ref_protected: "true" }' }],
    ['a glob the later exact value is outside of', { when: '{ project_id: "20", environment: { glob: "review/*" } }' }],
    ['a glob that stays in one segment where the later crosses "/"', { when: '{ project_id: "20", environment: { glob: "review/*" } }' }, { when: '{ project_id: "20", environment: { glob: "review/**" } }' }],
    ['a list without the later pattern\'s values', { when: '{ project_id: "20", environment: [staging, qa] }' }, { when: '{ project_id: "20", environment: { regex: "prod-[0-9]+" } }' }],
    ['another issuer', { when: '{ project_id: "20" }', issuer: 'https://gitlab.other.example' }],
    ['requirements at least as strict', { when: '{ project_id: "20" }', require: '{ deploymentApprovals: { min: 3, fromGroups: [payments/release] } }' }, { require: '{ deploymentApprovals: { min: 2, fromGroups: [payments/release] } }' }],
  ];
  for (const [what, earlier, later] of clean) {
    it(`says nothing about ${what}`, () => assert.deepEqual(bypassOf(pair(earlier, later)), []));
  }

  it('says nothing when the stricter rule comes first', () => {
    const policy = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: production
    when: { project_id: "20", environment: production }
    require: { deploymentApprovals: { min: 2 } }
    grant: { token: { audiences: [${DEPLOY}] } }
  - name: broad
    when: { project_id: "20" }
    require: { jobRunning: false }
    grant: { token: { audiences: [${DEPLOY}] } }
`) }]);
    assert.deepEqual(bypassOf(policy), []);
  });
});
