/** What a decision says and records: which rules a caller may see, which patterns run, fact needs, codes and texts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApprovalUser, MergeRequestFacts } from '../src/core/approvals.js';
import { compilePolicy, type CompiledPolicy } from '../src/core/policy/compile.js';
import { decide, factNeeds, preEvaluate, reasonsFor, type RuleEvaluation } from '../src/core/policy/evaluate.js';
import { principalOf } from './support/principals.js';

const NOW = new Date('2025-06-01T13:00:00.000Z');
const principal = principalOf;
const policyOf = (...rules: object[]): CompiledPolicy => compilePolicy([{ source: 'p.yaml', data: { version: 1, rules } }]);
const conditionsOf = (evaluation: RuleEvaluation | undefined) =>
  (evaluation?.conditions ?? []).map((condition) => [condition.name, condition.ok, condition.skipped ?? false]);

describe('rules bound to a project', () => {
  const projectClaims = ['project_id', 'project_path', 'namespace_id', 'namespace_path', 'job_project_id', 'job_project_path', 'job_namespace_id',
    'job_namespace_path', 'ci_config_ref_uri', 'sub'];
  for (const claim of projectClaims) {
    it(`a rule whose ${claim} names another project is hidden, with its reasons`, () => {
      const policy = policyOf({ name: 'elsewhere', when: { [claim]: 'another', environment: 'staging' }, grant: { token: { audiences: ['a'] } } });
      const preliminary = preEvaluate(policy, principal(), { token: {} });
      assert.deepEqual([...preliminary.visible], []);
      assert.deepEqual(reasonsFor(preliminary.evaluations, preliminary.visible), []);
    });
  }

  it('a rule whose other conditions fail stays visible, and an absent claim reads "(absent)"', () => {
    const policy = policyOf({ name: 'here', when: { project_id: '20', environment: 'staging' }, grant: { token: { audiences: ['a'] } } });
    const preliminary = preEvaluate(policy, principal({ environment: null }), { token: {} });
    assert.deepEqual([...preliminary.visible], ['here']);
    assert.deepEqual(reasonsFor(preliminary.evaluations, preliminary.visible), [{ rule: 'here', name: 'environment', detail: 'expected staging, got (absent)' }]);
  });
});

describe('which patterns run', () => {
  // Compiled in claim order: the ref_path pattern comes before the job_project_path one, and the project pattern still runs first.
  const policy = policyOf({
    name: 'payments',
    when: { ref_type: 'branch', ref_path: { glob: 'refs/heads/*' }, job_project_path: { glob: 'payments/*' }, environment: ['production', 'staging'] },
    grant: { token: { audiences: ['a'] } },
  });

  it('a failed project pattern leaves the other patterns unevaluated, whatever their order; strings and lists are evaluated as exact values', () => {
    const [evaluation] = preEvaluate(policy, principal({ job_project_path: 'mallory/x' }), { token: {} }).evaluations;
    assert.deepEqual(conditionsOf(evaluation), [['ref_type', true, false], ['ref_path', false, true], ['job_project_path', false, false], ['environment', true, false]]);
    assert.equal(evaluation?.conditions[1]?.expected, 'glob refs/heads/* (not evaluated: a project condition failed)');
  });

  it('a project pattern that holds lets the others run', () => {
    const preliminary = preEvaluate(policy, principal({ environment: 'production' }), { token: {} });
    assert.deepEqual(conditionsOf(preliminary.evaluations[0]), [['ref_type', true, false], ['ref_path', true, false], ['job_project_path', true, false], ['environment', true, false]]);
    assert.deepEqual(preliminary.candidates.map((rule) => rule.name), ['payments']);
  });
});

describe('approval requirements in decisions', () => {
  const approvalRule = (require: object) => policyOf({ name: 'approved', when: { project_id: '20' }, require: { jobRunning: false, ...require }, grant: { token: { audiences: ['a'] } } });
  const reviewer: ApprovalUser = { id: '77', username: 'rev', bot: false, blocked: false };
  const own = principal();
  const mergeRequest: MergeRequestFacts = {
    iid: 7, state: 'merged', targetBranch: own.ref_path.replace('refs/heads/', ''), mergeCommitSha: own.sha, squashCommitSha: null, sha: null,
    author: { id: '78', username: 'author', bot: false, blocked: false }, committers: [], approvals: [{ user: reviewer, at: undefined }], latestVersionAt: undefined,
  };

  it('needs merge request facts, and no groups, for a requirement without fromGroups; a deferred deployment needs nothing', () => {
    const both = approvalRule({ deploymentApprovals: { min: 1, fromGroups: ['payments/release'] }, mergeRequestApprovals: { min: 1 } });
    const preliminary = preEvaluate(both, own, { token: {} });
    assert.deepEqual(factNeeds(preliminary, { deferDeploymentApprovals: true }), { jobStatus: false, deploymentApprovals: false, mergeRequestApprovals: true, groups: [] });
    const deploymentOnly = preEvaluate(approvalRule({ deploymentApprovals: { min: 1 } }), own, { token: {} });
    assert.deepEqual(factNeeds(deploymentOnly), { jobStatus: false, deploymentApprovals: true, mergeRequestApprovals: false, groups: [] });
  });

  it('records the merge request and who approved it with an allowed decision', () => {
    const decision = decide(preEvaluate(approvalRule({ mergeRequestApprovals: { min: 1, fresh: false } }), own, { token: {} }), { approvals: { mergeRequest } }, NOW);
    assert.equal(decision.allowed, true);
    assert.deepEqual(decision.allowed ? decision.approvals : undefined, { mergeRequest: { iid: 7, approvedBy: ['rev'] } });
    assert.deepEqual(decision.evaluations.map((evaluation) => [evaluation.rule, evaluation.requirements.map((requirement) => [requirement.name, requirement.ok])]),
      [['approved', [['sameProject', true], ['mergeRequestApprovals', true]]]]);
  });

  it('says when deferred deployment approvals without groups are checked', () => {
    const decision = decide(preEvaluate(approvalRule({ deploymentApprovals: { min: 1 } }), own, { token: {} }), { approvals: {} }, NOW, { deferDeploymentApprovals: true });
    assert.equal(decision.allowed, true);
    assert.deepEqual(decision.evaluations[0]?.requirements[1], { name: 'deploymentApprovals', ok: true, deferred: true, detail: 'checked when the deploy job runs (needs 1)' });
  });

  it('answers approval_required when merge request approvals are what fails, and says when deferred deployment approvals are checked', () => {
    const rule = approvalRule({ deploymentApprovals: { min: 2, fromGroups: ['payments/release', 'payments/ops'] }, mergeRequestApprovals: { min: 1 } });
    const decision = decide(preEvaluate(rule, own, { token: {} }), { approvals: {} }, NOW, { deferDeploymentApprovals: true });
    assert.deepEqual(decision.allowed ? [] : [decision.code, decision.detail], ['approval_required', 'rule approved: merge request approvals were not looked up']);
    assert.deepEqual(decision.evaluations[0]?.requirements, [
      { name: 'sameProject', ok: true, detail: `job runs in project ${own.project_id}` },
      { name: 'deploymentApprovals', ok: true, deferred: true, detail: 'checked when the deploy job runs (needs 2 from payments/release, payments/ops)' },
      { name: 'mergeRequestApprovals', ok: false, detail: 'merge request approvals were not looked up' },
    ]);
  });
});

describe('the same-project requirement in explanations', () => {
  const rule = (require: object) => policyOf({ name: 'r', when: { project_id: '20' }, require: { jobRunning: false, ...require }, grant: { token: { audiences: ['a'] } } });
  const sameProject = (policy: CompiledPolicy, overrides: Record<string, unknown>) =>
    decide(preEvaluate(policy, principal(overrides), { token: {} }), { approvals: {} }, NOW).evaluations[0]?.requirements[0];

  it('says when it is not required, and when a pipeline without job_project_id passes it', () => {
    assert.deepEqual(sameProject(rule({ sameProject: false }), {}), { name: 'sameProject', ok: true, detail: 'not required' });
    assert.deepEqual(sameProject(rule({}), { job_project_id: null, pipeline_source: 'push' }), { name: 'sameProject', ok: true, detail: 'job_project_id absent; not a merge request pipeline' });
  });
});
