/** Evaluation details: which rules a caller may see, and which code a denial gets. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { compilePolicy, type CompiledPolicy } from '../src/core/policy/compile.js';
import { buildRuleIndex } from '../src/core/policy/rule-index.js';
import { decide, factNeeds, preEvaluate, reasonsFor, type RuleEvaluation } from '../src/core/policy/evaluate.js';
import { principalOf } from './support/principals.js';

const policy = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: by-job-project
    when: { job_project_id: "20", environment: production }
    grant: { token: { audiences: [a] } }
  - name: by-config
    when: { ci_config_ref_uri: gitlab.example.com/payments/api//.gitlab-ci.yml@refs/heads/main, environment: production }
    grant: { token: { audiences: [a] } }
  - name: by-sub
    when: { sub: "project_path:payments/api:ref_type:branch:ref:main", environment: production }
    grant: { token: { audiences: [a] } }
  - name: any-project-staging
    when: { environment: staging }
    require: { jobRunning: false }
    grant: { token: { audiences: [a] } }
`) }]);

const principal = principalOf;

describe('rule visibility', () => {
  it('hides rules bound to another project by job_project_id, ci_config_ref_uri or sub', () => {
    const other = principal({ project_id: '99', project_path: 'mallory/x', job_project_id: '99', job_project_path: 'mallory/x', sub: 'project_path:mallory/x:ref_type:branch:ref:main', ci_config_ref_uri: 'gitlab.example.com/mallory/x//.gitlab-ci.yml@refs/heads/main' });
    const preliminary = preEvaluate(policy, other, { token: {} });
    assert.deepEqual([...preliminary.visible], ['any-project-staging']);
    const decision = decide(preliminary, { approvals: {} }, new Date());
    assert.equal(decision.allowed, false);
    assert.ok(reasonsFor(decision.evaluations, preliminary.visible).every((reason) => reason.rule === 'any-project-staging'));
  });

  it('shows those rules to their own project', () => {
    const own = principal({ environment: 'staging' });
    assert.deepEqual([...preEvaluate(policy, own, { token: {} }).visible].sort(), ['any-project-staging', 'by-config', 'by-job-project', 'by-sub']);
  });
});

describe('fact needs and denial codes', () => {
  it('needs no facts when no rule applies, so a denied request costs no API call', () => {
    const preliminary = preEvaluate(policy, principal({ environment: 'qa' }), { token: {} });
    assert.deepEqual(factNeeds(preliminary), { jobStatus: false, deploymentApprovals: false, mergeRequestApprovals: false, groups: [] });
  });

  it('asks for job status only for candidates that require it', () => {
    assert.equal(factNeeds(preEvaluate(policy, principal({ environment: 'staging' }), { token: {} })).jobStatus, false);
    assert.equal(factNeeds(preEvaluate(policy, principal({}), { token: {} })).jobStatus, true);
  });

  it('answers job_not_running, not policy_denied, when the only failure is the job status', () => {
    const decision = decide(preEvaluate(policy, principal({}), { token: {} }), { jobStatus: 'success', approvals: {} }, new Date());
    assert.equal(decision.allowed, false);
    assert.equal(decision.allowed ? '' : decision.code, 'job_not_running');
  });

  it('answers grant_not_allowed when a rule applies but does not give the audience', () => {
    const decision = decide(preEvaluate(policy, principal({}), { token: { audience: 'zzz' } }), { jobStatus: 'running', approvals: {} }, new Date());
    assert.equal(decision.allowed ? '' : decision.code, 'grant_not_allowed');
  });
});

describe('cheap conditions before patterns', () => {
  const patterned = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: payments-review
    when: { environment: { regex: "review/([a-z]|[0-9a-z])*" }, project_id: "20", ref_path: { glob: "refs/heads/*" } }
    grant: { token: { audiences: [a] } }
`) }]);
  // The same rule with every pattern matcher counting its calls.
  function counted(): { policy: CompiledPolicy; calls: string[] } {
    const calls: string[] = [];
    const rules = patterned.rules.map((rule) => ({
      ...rule,
      conditions: rule.conditions.map((condition) => typeof condition.spec === 'object' && !Array.isArray(condition.spec)
        ? { ...condition, matches: (value: string | undefined) => (calls.push(condition.claim), condition.matches(value)) }
        : condition),
    }));
    return { policy: { rules, sources: patterned.sources, index: buildRuleIndex(rules) }, calls };
  }

  it('runs no pattern of a rule bound to another project, and says so in its explanation', () => {
    const { policy: spied, calls } = counted();
    const caller = principal({ project_id: '99', environment: `review/${'a'.repeat(2000)}!` });
    assert.deepEqual(preEvaluate(spied, caller, { token: {} }).evaluations, [], 'the index leaves the rule out altogether');
    const preliminary = preEvaluate(spied, caller, { token: {} }, { everyRule: true });
    assert.deepEqual(calls, []);
    assert.deepEqual([...preliminary.visible], []);
    const conditions = (preliminary.evaluations[0] as RuleEvaluation).conditions;
    assert.deepEqual(conditions.map((condition) => [condition.name, condition.ok, condition.skipped ?? false]).sort(), [
      ['environment', false, true], ['project_id', false, false], ['ref_path', false, true],
    ]);
    assert.match(conditions.find((condition) => condition.name === 'environment')?.expected ?? '', /^regex review\/\(\[a-z\]\|\[0-9a-z\]\)\* \(not evaluated: a project condition failed\)$/);
    assert.deepEqual(reasonsFor(preliminary.evaluations, new Set(['payments-review'])).map((reason) => reason.name), ['project_id']);
  });

  it('evaluates every pattern of a rule its own project can see', () => {
    const { policy: spied, calls } = counted();
    const preliminary = preEvaluate(spied, principal({ environment: 'review/feature1' }), { token: {} });
    assert.deepEqual(calls.sort(), ['environment', 'ref_path']);
    assert.deepEqual(preliminary.candidates.map((rule) => rule.name), ['payments-review']);
  });
});

describe('requirements that guard against forks and finished jobs', () => {
  const guarded = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: payments-deploy
    when: { project_id: "20" }
    grant: { token: { audiences: [a] } }
`) }]);
  const tolerant = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: fork-tolerant
    when: { project_id: "20" }
    require: { sameProject: false }
    grant: { token: { audiences: [a] } }
`) }]);
  const decision = (policy: CompiledPolicy, overrides: Record<string, unknown>, jobStatus: string | undefined) =>
    decide(preEvaluate(policy, principal(overrides), { token: {} }), { ...(jobStatus === undefined ? {} : { jobStatus }), approvals: {} }, new Date());
  const outcome = (result: ReturnType<typeof decision>) => (result.allowed ? `allowed by ${result.rule.name}` : `${result.code}: ${result.detail}`);

  it('allows a running job of the project itself', () => {
    assert.equal(outcome(decision(guarded, {}, 'running')), 'allowed by payments-deploy');
  });

  for (const status of [undefined, 'created', 'pending', 'success', 'failed', 'canceled', 'manual', 'Running', '']) {
    it(`counts job status ${status === undefined ? '(unknown)' : JSON.stringify(status)} as not running`, () => {
      assert.equal(outcome(decision(guarded, {}, status)), `job_not_running: rule payments-deploy: ${status === undefined ? 'job status unknown' : `job status is ${status}`}`);
    });
  }

  // GitLab before 18.4 sends no job_project_id: only a merge-request pipeline can then run in a fork.
  it('refuses a merge-request pipeline without job_project_id when sameProject is on', () => {
    assert.equal(outcome(decision(guarded, { job_project_id: null, pipeline_source: 'merge_request_event' }, 'running')), 'policy_denied: rule payments-deploy: job_project_id absent in a merge request pipeline');
  });

  it('allows other pipelines without job_project_id, and a merge-request pipeline when sameProject is off', () => {
    assert.equal(outcome(decision(guarded, { job_project_id: null, pipeline_source: 'push' }, 'running')), 'allowed by payments-deploy');
    assert.equal(outcome(decision(tolerant, { job_project_id: null, pipeline_source: 'merge_request_event' }, 'running')), 'allowed by fork-tolerant');
  });

  it('refuses a fork pipeline whose job_project_id names another project', () => {
    assert.equal(outcome(decision(guarded, { job_project_id: '99' }, 'running')), 'policy_denied: rule payments-deploy: job runs in project 99, token names project 20 (fork pipeline)');
  });
});

describe('issuer conditions, fact needs and reasons', () => {
  const policy = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: other-instance
    issuer: https://gitlab.other.example
    when: { project_id: "20" }
    require: { jobRunning: false }
    grant: { token: { audiences: [a] } }
  - name: approved-deploys
    issuer: https://gitlab.example.com
    when: { project_id: "20", environment: production }
    require: { deploymentApprovals: { min: 1, fromGroups: [payments/release] }, mergeRequestApprovals: { min: 1, fromGroups: [payments/reviewers] } }
    grant: { token: { audiences: [a] } }
`) }]);

  it('applies a rule only to tokens of its issuer, hides it from other issuers, and says which issuer it expected', () => {
    assert.deepEqual(preEvaluate(policy, principal({}), { token: {} }).evaluations.map((evaluation) => evaluation.rule), ['approved-deploys']);
    const preliminary = preEvaluate(policy, principal({}), { token: {} }, { everyRule: true });
    assert.deepEqual(preliminary.candidates.map((rule) => rule.name), ['approved-deploys']);
    assert.deepEqual([...preliminary.visible], ['approved-deploys'], 'project 20 on another GitLab is another project');
    const other = preliminary.evaluations.find((evaluation) => evaluation.rule === 'other-instance') as RuleEvaluation;
    assert.equal(other.applies, false);
    assert.deepEqual(other.conditions[0], { name: 'iss', expected: 'https://gitlab.other.example', actual: 'https://gitlab.example.com', ok: false });
    const own = preliminary.evaluations.find((evaluation) => evaluation.rule === 'approved-deploys') as RuleEvaluation;
    assert.deepEqual(own.conditions[0], { name: 'iss', expected: 'https://gitlab.example.com', actual: 'https://gitlab.example.com', ok: true });
  });

  it('asks for both kinds of approval and every group a candidate names, and nothing for a fork', () => {
    assert.deepEqual(factNeeds(preEvaluate(policy, principal({}), { token: {} })), {
      jobStatus: true, deploymentApprovals: true, mergeRequestApprovals: true, groups: ['payments/release', 'payments/reviewers'],
    });
    assert.deepEqual(factNeeds(preEvaluate(policy, principal({ job_project_id: '99' }), { token: {} })), {
      jobStatus: false, deploymentApprovals: false, mergeRequestApprovals: false, groups: [],
    });
  });

  it('denies with approval_required when approvals are missing, naming each failed requirement in the reasons', () => {
    const preliminary = preEvaluate(policy, principal({}), { token: {} });
    const decision = decide(preliminary, { jobStatus: 'running', approvals: {} }, new Date());
    assert.equal(decision.allowed ? '' : decision.code, 'approval_required');
    const evaluation = decision.evaluations.find((item) => item.rule === 'approved-deploys') as RuleEvaluation;
    assert.deepEqual(evaluation.requirements.map((requirement) => [requirement.name, requirement.ok]), [
      ['sameProject', true], ['jobRunning', true], ['deploymentApprovals', false], ['mergeRequestApprovals', false],
    ]);
    const reasons = reasonsFor(decision.evaluations, preliminary.visible).filter((reason) => reason.rule === 'approved-deploys');
    assert.deepEqual(reasons.map((reason) => reason.name), ['deploymentApprovals', 'mergeRequestApprovals']);
    assert.ok(reasons.every((reason) => reason.detail.length > 0));
  });

  it('gives the failed condition, or the failed grant, in the detail and the reasons', () => {
    const unmatched = preEvaluate(policy, principal({ environment: 'staging' }), { token: {} });
    const none = decide(unmatched, { approvals: {} }, new Date());
    assert.deepEqual(none.allowed ? [] : [none.code, none.detail], ['policy_denied', 'no rule matches this pipeline']);
    assert.deepEqual(reasonsFor(none.evaluations, new Set(['approved-deploys'])), [{ rule: 'approved-deploys', name: 'environment', detail: 'expected production, got staging' }]);

    const wrongGrant = preEvaluate(policy, principal({}), { token: { audience: 'zzz' } });
    const refused = decide(wrongGrant, { approvals: {} }, new Date());
    const reasons = reasonsFor(refused.evaluations, new Set(['approved-deploys']));
    assert.deepEqual(reasons.map((reason) => reason.name), ['grant.token']);
    assert.deepEqual(refused.allowed ? [] : [refused.code, refused.detail], ['grant_not_allowed', `rule approved-deploys: ${reasons[0]?.detail}`]);
  });
});

describe('a rule must allow every requested grant', () => {
  const tokenOnly = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: token-only
    when: { project_id: "20" }
    require: { jobRunning: false }
    grant: { token: { audiences: [a] } }
`) }]);

  it('refuses a request for a token and a Google credential when the rule grants only the token', () => {
    const preliminary = preEvaluate(tokenOnly, principal({}), { token: {}, google: {} });
    assert.deepEqual(preliminary.candidates, []);
    const decision = decide(preliminary, { approvals: {} }, new Date());
    assert.equal(decision.allowed ? 'allowed' : decision.code, 'grant_not_allowed');
  });
});
