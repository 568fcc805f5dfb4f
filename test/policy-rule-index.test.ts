/**
 * How compiled conditions match (core/policy/compile.ts) and which rules the rule index hands to evaluation and to
 * `policy check` (core/policy/rule-index.ts), on small policies whose expected answers are written out.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicy, PolicyError, type CompiledPolicy } from '../src/core/policy/compile.js';
import { earlierRulesThatMayCover, rulesFor } from '../src/core/policy/rule-index.js';

const GITLAB = 'https://gitlab.example.com';
const OTHER = 'https://gitlab.other.example.com';
const GRANT = { token: { audiences: ['a'] } };

type RuleInput = { readonly name: string; readonly issuer?: string; readonly when: Record<string, unknown> };
const policyOf = (...rules: RuleInput[]): CompiledPolicy =>
  compilePolicy([{ source: 'policy.yaml', data: { version: 1, rules: rules.map((rule) => ({ ...rule, grant: GRANT })) } }]);

function matcherOf(claim: string, spec: unknown): (value: string | undefined) => boolean {
  const condition = policyOf({ name: 'r', when: { [claim]: spec } }).rules[0]?.conditions.find((c) => c.claim === claim);
  assert.ok(condition);
  return condition.matches;
}

function policyError(documents: { source: string; data: unknown }[]): PolicyError {
  try {
    compilePolicy(documents);
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return err;
  }
  return assert.fail('compiled');
}

describe('compiled conditions', () => {
  it('match a list by membership only, and never an absent claim', () => {
    const condition = policyOf({ name: 'r', when: { environment: ['staging', 'production'] } }).rules[0]?.conditions[0];
    assert.equal(condition?.expected, 'any of [staging, production]');
    assert.equal(condition.matches('production'), true);
    assert.equal(condition.matches('review'), false);
    assert.equal(condition.matches(undefined), false);
  });

  it('never match an absent claim with a pattern that would match the text "undefined"', () => {
    assert.equal(matcherOf('environment', { glob: '*' })(undefined), false);
    assert.equal(matcherOf('environment', { regex: '.*' })(undefined), false);
    assert.equal(matcherOf('environment', { glob: '*' })('undefined'), true);
  });

  it('let a glob or regex cross "/" in a path claim only with allowSlash', () => {
    assert.equal(matcherOf('environment', { glob: 'review/*' })('review/a/b'), false);
    assert.equal(matcherOf('environment', { glob: 'review/*', allowSlash: true })('review/a/b'), true);
    assert.equal(matcherOf('project_path', { regex: 'payments/.*' })('payments/a/b'), false);
    assert.equal(matcherOf('project_path', { regex: 'payments/.*', allowSlash: true })('payments/a/b'), true);
    assert.equal(matcherOf('user_login', { regex: 'a.*' })('a/b'), true);
  });

  it('keep each regex of a policy apart, even when they share a cache', () => {
    const policy = policyOf(
      { name: 'one', when: { ref: { regex: 'release-[0-9]+' } } },
      { name: 'two', when: { ref: { regex: 'hotfix-[a-z]+' } } },
      { name: 'three', when: { ref: { regex: 'hotfix-[a-z]+', allowSlash: true } } },
    );
    const [one, two, three] = policy.rules.map((rule) => rule.conditions[0]?.matches);
    assert.deepEqual([one?.('release-1'), one?.('hotfix-a')], [true, false]);
    assert.deepEqual([two?.('release-1'), two?.('hotfix-a'), two?.('hotfix-a/b')], [false, true, false]);
    assert.equal(three?.('hotfix-a/b'), false, 'a character class never spans "/" in a path claim');
    assert.deepEqual(policy.sources, ['policy.yaml']);
  });

  it('skip a condition given as undefined', () => {
    const policy = policyOf({ name: 'r', when: { project_id: '20', environment: undefined } });
    assert.deepEqual(policy.rules[0]?.conditions.map((c) => c.claim), ['project_id']);
  });

  it('list every source, in order', () => {
    const data = (name: string) => ({ version: 1, rules: [{ name, when: { project_id: '20' }, grant: GRANT }] });
    assert.deepEqual(compilePolicy([{ source: 'b.yaml', data: data('b') }, { source: 'a.yaml', data: data('a') }]).sources, ['b.yaml', 'a.yaml']);
  });
});

describe('policy errors', () => {
  it('name every issue on its own line, with its source and path when it has one', () => {
    const rule = { name: 'dup', when: { project_id: '20' }, grant: GRANT };
    const err = policyError([
      { source: 'a.yaml', data: { version: 1, rules: [rule] } },
      { source: 'b.yaml', data: 'not a policy' },
      { source: 'c.yaml', data: { version: 1, rules: [{ ...rule, name: 'other' }, rule] } },
    ]);
    assert.equal(err.name, 'PolicyError');
    assert.deepEqual(err.issues.map((issue) => [issue.source, issue.path]), [['b.yaml', ''], ['c.yaml', 'rules.1.name']]);
    assert.equal(err.issues[1]?.message, 'duplicate rule name dup (first in a.yaml)');
    const lines = err.message.split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], `b.yaml: ${err.issues[0]?.message}`);
    assert.equal(lines[1], 'c.yaml: rules.1.name: duplicate rule name dup (first in a.yaml)');
  });
});

describe('rule index', () => {
  const policy = policyOf(
    { name: 'id-20', when: { project_id: '20' } }, // 0
    { name: 'id-list', when: { project_id: ['20', '21', '20'] } }, // 1
    { name: 'path-api', when: { project_path: 'payments/api' } }, // 2
    { name: 'path-glob', when: { project_path: { glob: 'payments/*' } } }, // 3
    { name: 'ref-main', when: { ref: 'main' } }, // 4
    { name: 'gitlab-id-21', issuer: GITLAB, when: { project_id: '21' } }, // 5
    { name: 'other-id-20', issuer: OTHER, when: { project_id: '20' } }, // 6
    { name: 'path-plain-glob', when: { project_path: { glob: 'payments/api' } } }, // 7
    { name: 'path-list', when: { project_path: ['payments/web', 'payments/api'] } }, // 8
    { name: 'gitlab-id-22', issuer: GITLAB, when: { project_id: '22', ref: 'x' } }, // 9
    { name: 'id-list-21-20', when: { project_id: ['21', '20'] } }, // 10
    { name: 'id-glob', when: { project_id: { glob: '2*' } } }, // 11
    { name: 'path-plain-glob-web', when: { project_path: { glob: 'payments/web' } } }, // 12
    { name: 'path-wild', when: { project_path: { glob: 'pay*' } } }, // 13
    { name: 'path-api-again', when: { project_path: 'payments/api' } }, // 14
    { name: 'path-regex', when: { project_path: { regex: 'payments/api' } } }, // 15
  );
  const indexes = (rules: readonly { readonly index: number }[]): number[] => rules.map((rule) => rule.index);
  const candidates = (issuer: string, project: { id?: string; path?: string }): number[] => indexes(rulesFor(policy.index, issuer, project));
  const earlier = (position: number): number[] => indexes(earlierRulesThatMayCover(policy.index, policy.rules[position] as (typeof policy.rules)[number]));

  it('hands evaluation the rules whose issuer and exact project can hold, in policy order', () => {
    assert.deepEqual(candidates(GITLAB, { id: '20', path: 'payments/api' }), [0, 1, 2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15]);
    assert.deepEqual(candidates(GITLAB, { id: '21' }), [1, 3, 4, 5, 7, 10, 11, 12, 13, 15]);
    assert.deepEqual(candidates(GITLAB, { id: '22', path: 'payments/web' }), [3, 4, 7, 8, 9, 11, 12, 13, 15]);
    assert.deepEqual(candidates(OTHER, { path: 'payments/web' }), [3, 4, 7, 8, 11, 12, 13, 15]);
    assert.deepEqual(candidates(OTHER, { id: '20' }), [0, 1, 3, 4, 6, 7, 10, 11, 12, 13, 15]);
    assert.deepEqual(candidates('https://unknown.example.com', { id: '99', path: 'x/y' }), [3, 4, 7, 11, 12, 13, 15]);
  });

  it('hands policy check the earlier rules that may cover a rule, looking under one value it accepts', () => {
    assert.deepEqual(earlier(9), [3, 4, 7], 'no earlier rule is filed under project 22');
    assert.deepEqual(earlier(10), [1, 3, 4, 7], 'a list is looked up under its first value');
    assert.deepEqual(earlier(11), [0, 1, 3, 4, 7, 10], 'a pattern is compared with every rule keyed by project_id');
    assert.deepEqual(earlier(12), [3, 4, 7, 8, 11], 'a glob without wildcards is looked up as its text');
    assert.deepEqual(earlier(13), [2, 3, 4, 7, 8, 11, 12], 'a glob with a wildcard is compared with every rule keyed by project_path');
    assert.deepEqual(earlier(14), [2, 3, 4, 7, 8, 11, 12, 13]);
    assert.deepEqual(earlier(15), [2, 3, 4, 7, 8, 11, 12, 13, 14], 'a regex is compared with every rule keyed by project_path');
    assert.deepEqual(earlier(6), [0, 1, 3, 4]);
    assert.deepEqual(earlier(0), []);
  });
});
