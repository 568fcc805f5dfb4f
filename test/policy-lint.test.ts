/**
 * `policy check` findings one by one: when an earlier rule always shadows a later one (issuer, conditions, each
 * requirement, each grant), and the exact warnings about bindings, pinning and sameProject.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { compilePolicy, type CompiledRule } from '../src/core/policy/compile.js';
import { lintPolicy, shadows } from '../src/core/policy/lint.js';

const PINNED = 'ci_config_ref_uri: gitlab.example.com/p//.gitlab-ci.yml@refs/heads/main';

interface RuleYaml {
  readonly when: string;
  readonly require?: string;
  readonly grant?: string;
  readonly issuer?: string;
}

function policyOf(...rules: RuleYaml[]) {
  const text = rules.map((rule, i) => [
    `  - name: r${i}`,
    ...(rule.issuer ? [`    issuer: ${rule.issuer}`] : []),
    `    when: ${rule.when}`,
    ...(rule.require ? [`    require: ${rule.require}`] : []),
    `    grant: ${rule.grant ?? '{ token: { audiences: [a] } }'}`,
  ].join('\n'));
  return compilePolicy([{ source: 'p.yaml', data: parse(`version: 1\nrules:\n${text.join('\n')}\n`) }]);
}

function pair(earlier: RuleYaml, later: RuleYaml): [CompiledRule, CompiledRule] {
  const [a, b] = policyOf(earlier, later).rules;
  assert.ok(a && b);
  return [a, b];
}

describe('shadows', () => {
  const base = { when: '{ project_id: "20", environment: production }' };
  const cases: Array<[what: string, earlier: RuleYaml, later: RuleYaml, expected: boolean]> = [
    ['the same rule twice', base, base, true],
    ['a later rule with one more condition', base, { when: '{ project_id: "20", environment: production, ref_protected: "true" }' }, true],
    ['a later rule without one of the earlier conditions', base, { when: '{ project_id: "20" }' }, false],
    ['a different value for one condition', base, { when: '{ project_id: "20", environment: staging }' }, false],
    ['a list against an exact value', { when: '{ project_id: ["20", "21"] }' }, { when: '{ project_id: "20" }' }, false],
    ['an earlier rule for any issuer', base, { ...base, issuer: 'https://gitlab.example.com' }, true],
    ['an earlier rule for another issuer', { ...base, issuer: 'https://a.example.com' }, { ...base, issuer: 'https://gitlab.example.com' }, false],
    ['an earlier rule for one issuer, a later for any', { ...base, issuer: 'https://a.example.com' }, base, false],
    ['the same issuer', { ...base, issuer: 'https://a.example.com' }, { ...base, issuer: 'https://a.example.com' }, true],
    ['an earlier rule that needs a running job, a later that does not', base, { ...base, require: '{ jobRunning: false }' }, false],
    ['a later rule that needs a running job, an earlier that does not', { ...base, require: '{ jobRunning: false }' }, base, true],
    ['an earlier rule that needs the same project, a later that does not', base, { ...base, require: '{ sameProject: false }' }, false],
    ['a later rule that needs the same project, an earlier that does not', { ...base, require: '{ sameProject: false }' }, base, true],
    ['the same deployment approvals', { ...base, require: '{ deploymentApprovals: { min: 2 } }' }, { ...base, require: '{ deploymentApprovals: { min: 2 } }' }, true],
    ['other deployment approvals', { ...base, require: '{ deploymentApprovals: { min: 2 } }' }, { ...base, require: '{ deploymentApprovals: { min: 1 } }' }, false],
    ['deployment approvals only in the later rule', base, { ...base, require: '{ deploymentApprovals: { min: 2 } }' }, true],
    ['the same merge-request approvals', { ...base, require: '{ mergeRequestApprovals: { min: 1 } }' }, { ...base, require: '{ mergeRequestApprovals: { min: 1 } }' }, true],
    ['other merge-request approvals', { ...base, require: '{ mergeRequestApprovals: { min: 1 } }' }, { ...base, require: '{ mergeRequestApprovals: { min: 1, fresh: false } }' }, false],
    ['a later grant the earlier rule gives otherwise', base, { ...base, grant: '{ token: { audiences: [b] } }' }, false],
    ['a later grant of a kind the earlier rule does not give', base, { ...base, grant: '{ token: { audiences: [a] }, linkerd: { serviceAccount: s, namespace: n } }' }, false],
    ['an earlier rule that grants more kinds', { ...base, grant: '{ token: { audiences: [a] }, linkerd: { serviceAccount: s, namespace: n } }' }, base, true],
  ];
  for (const [what, earlier, later, expected] of cases) {
    it(`${expected ? 'yes' : 'no'}: ${what}`, () => assert.equal(shadows(...pair(earlier, later)), expected));
  }
});

describe('lintPolicy', () => {
  const warnings = (rule: RuleYaml) => lintPolicy(policyOf(rule)).map((finding) => `${finding.severity}: ${finding.message}`);
  const PATH_ONLY = 'warning: binds a project by path only: a renamed or re-created project takes over the path; add project_id';
  const UNBOUND = 'warning: has no project or namespace condition: every project of the issuer can match it';
  const UNPINNED = 'warning: may match a production environment but does not pin ci_config_ref_uri to one exact pipeline definition';
  const FORKS = 'warning: sameProject is off: fork merge-request pipelines can present this project';

  it('warns about each path claim without an id, and about no binding at all', () => {
    for (const claim of ['project_path', 'namespace_path', 'job_project_path']) assert.deepEqual(warnings({ when: `{ ${claim}: payments/api }` }), [PATH_ONLY], claim);
    assert.deepEqual(warnings({ when: '{ project_path: payments/api, namespace_id: "7" }' }), []);
    assert.deepEqual(warnings({ when: '{ namespace_id: "7" }' }), []);
    assert.deepEqual(warnings({ when: '{ ref_protected: "true" }' }), [UNBOUND]);
  });

  it('warns about a rule that may match production, by environment or tier, unless one exact pipeline definition is pinned', () => {
    assert.deepEqual(warnings({ when: '{ project_id: "20", environment: { glob: "prod*" } }' }), [UNPINNED]);
    assert.deepEqual(warnings({ when: '{ project_id: "20", deployment_tier: production }' }), [UNPINNED]);
    assert.deepEqual(warnings({ when: `{ project_id: "20", environment: production, ${PINNED} }` }), []);
    assert.deepEqual(warnings({ when: '{ project_id: "20", environment: production, ci_config_ref_uri: { glob: "gitlab.example.com/p//*" } }' }), [UNPINNED]);
    assert.deepEqual(warnings({ when: '{ project_id: "20", environment: staging, deployment_tier: staging }' }), []);
  });

  it('warns when sameProject is off', () => {
    assert.deepEqual(warnings({ when: '{ project_id: "20" }', require: '{ sameProject: false }' }), [FORKS]);
  });

  it('reports an unreachable rule once, naming the first rule that shadows it', () => {
    const policy = policyOf({ when: '{ project_id: "20" }' }, { when: '{ project_id: "20" }' }, { when: '{ project_id: "20", ref_protected: "true" }' });
    assert.deepEqual(lintPolicy(policy), [
      { severity: 'error', rule: 'r1', message: 'unreachable: rule r0 comes first and always matches when this one would' },
      { severity: 'error', rule: 'r2', message: 'unreachable: rule r0 comes first and always matches when this one would' },
    ]);
  });

  it('reports a bypass once, as an error or accepted, and not also as unreachable', () => {
    const policy = policyOf({ when: '{ project_id: "20" }', require: '{ jobRunning: false }' }, { when: '{ project_id: "20" }' }, { when: '{ project_id: "20" }' });
    for (const [allowShadowing, severity] of [[false, 'error'], [true, 'accepted']] as const) {
      const findings = lintPolicy(policy, { allowShadowing });
      assert.deepEqual(findings.map((finding) => [finding.rule, finding.severity]), [['r1', severity], ['r2', severity]]);
      for (const finding of findings) assert.match(finding.message, /^rule r0 comes first/);
    }
    assert.deepEqual(lintPolicy(policy).map((finding) => finding.severity), ['error', 'error'], 'no options: errors');
  });
});
