/**
 * The parts of the shadowing check (core/policy/shadowing.ts) one at a time: when an earlier rule's conditions may
 * cover a later rule's, which grants two rules share, and in what ways the earlier rule asks less.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicy, type CompiledRule } from '../src/core/policy/compile.js';
import type { GrantsSpec, RequireSpec } from '../src/core/policy/schema.js';
import { conditionsCover, overlappingGrants, shadowingBypass, weakerRequirements } from '../src/core/policy/shadowing.js';

const GITLAB = 'https://gitlab.example.com';
const OTHER = 'https://gitlab.other.example.com';

function rulesOf(earlier: Record<string, unknown>, later: Record<string, unknown>): [CompiledRule, CompiledRule] {
  const rules = [{ name: 'earlier', ...earlier }, { name: 'later', ...later }].map((rule) => ({ grant: { token: { audiences: ['a'] } }, ...rule }));
  const { rules: compiled } = compilePolicy([{ source: 'policy.yaml', data: { version: 1, rules } }]);
  return [compiled[0] as CompiledRule, compiled[1] as CompiledRule];
}
const covers = (earlierWhen: Record<string, unknown>, laterWhen: Record<string, unknown>): boolean =>
  conditionsCover(...rulesOf({ when: earlierWhen }, { when: laterWhen }));
const env = (spec: unknown): Record<string, unknown> => ({ environment: spec });

describe('conditionsCover', () => {
  it('needs the earlier rule to have no issuer or the later rule’s', () => {
    const pair = (earlier: string | undefined, later: string | undefined): boolean => conditionsCover(...rulesOf(
      { when: env('prod'), ...(earlier === undefined ? {} : { issuer: earlier }) },
      { when: env('prod'), ...(later === undefined ? {} : { issuer: later }) },
    ));
    assert.equal(pair(undefined, GITLAB), true);
    assert.equal(pair(undefined, undefined), true);
    assert.equal(pair(GITLAB, GITLAB), true);
    assert.equal(pair(GITLAB, OTHER), false);
    assert.equal(pair(GITLAB, undefined), false);
  });

  it('needs every earlier condition on a claim the later rule also constrains', () => {
    assert.equal(covers({ environment: 'prod', ref: 'main' }, env('prod')), false);
    assert.equal(covers(env('prod'), { environment: 'prod', ref: 'main' }), true);
  });

  it('compares a list by all its values', () => {
    assert.equal(covers(env('staging'), env(['staging', 'production'])), false);
    assert.equal(covers(env(['staging', 'production']), env(['production'])), true);
    assert.equal(covers(env({ glob: 'review/*' }), env(['review/a', 'review/b'])), true);
  });

  it('treats a glob without wildcards as its text', () => {
    assert.equal(covers(env({ glob: 'review/a' }), env('review/a')), true);
    assert.equal(covers(env('x'), env({ glob: '*' })), true, 'an exact earlier value that the later glob matches may cover it');
  });

  it('takes identical patterns as covering', () => {
    assert.equal(covers(env({ regex: 'review-[0-9]+' }), env({ regex: 'review-[0-9]+' })), true);
    assert.equal(covers(env({ glob: 'review/*' }), env({ glob: 'review/*' })), true);
  });

  it('lets an exact value or a list cover a pattern only when the pattern matches one of them', () => {
    assert.equal(covers(env('review/a'), env({ glob: 'review/*' })), true);
    assert.equal(covers(env('prod'), env({ glob: 'review/*' })), false);
    assert.equal(covers(env(['review/a', 'prod']), env({ glob: 'review/*' })), true);
    assert.equal(covers(env(['prod', 'staging']), env({ glob: 'review/*' })), false);
  });

  it('probes an earlier pattern with values the later glob matches: empty, a letter, letters and digits, punctuation, a path', () => {
    assert.equal(covers(env({ glob: 'review/?*' }), env({ glob: 'review/*' })), false, 'the empty filling');
    assert.equal(covers(env({ regex: 'review/(Z9|-_\\.)?' }), env({ glob: 'review/*' })), false, 'a letter');
    assert.equal(covers(env({ regex: 'review/(a|-_\\.)?' }), env({ glob: 'review/*' })), false, 'letters and digits');
    assert.equal(covers(env({ regex: 'review/(a|Z9)?' }), env({ glob: 'review/*' })), false, 'punctuation');
    assert.equal(covers(env({ regex: 'review/(|a|Z9|-_\\.)' }), env({ glob: 'review/*' })), true, 'every filling');
    assert.equal(covers(env({ glob: 'review/*' }), env({ glob: 'review/*', allowSlash: true })), false, 'a path');
    assert.equal(covers(env({ glob: 'review/**' }), env({ glob: 'review/*', allowSlash: true })), true);
  });

  it('fills a ? with one character of each filling', () => {
    assert.equal(covers(env({ regex: 'v[a-z]' }), env({ glob: 'v?' })), false, 'vZ and v- are refused');
    assert.equal(covers(env({ regex: 'v[a-zA-Z_.-]' }), env({ glob: 'v?' })), true);
  });
});

describe('overlappingGrants', () => {
  const token = (...audiences: string[]): GrantsSpec => ({ token: { audiences } }) as unknown as GrantsSpec;
  const linkerd = (serviceAccount: string, namespace: string): GrantsSpec => ({ linkerd: { serviceAccount, namespace } }) as unknown as GrantsSpec;
  const google = (serviceAccount: string): GrantsSpec => ({ google: { serviceAccount } }) as unknown as GrantsSpec;

  it('names the token audiences both grant', () => {
    assert.deepEqual(overlappingGrants(token('a', 'b', 'c'), token('c', 'b')), ['token audience b, c']);
    assert.deepEqual(overlappingGrants(token('a'), token('b')), []);
    assert.deepEqual(overlappingGrants({} as GrantsSpec, token('a')), []);
    assert.deepEqual(overlappingGrants(token('a'), {} as GrantsSpec), []);
  });

  it('names the same Linkerd identity, service account and namespace alike', () => {
    assert.deepEqual(overlappingGrants(linkerd('deploy', 'payments'), linkerd('deploy', 'payments')), ['linkerd identity deploy.payments']);
    assert.deepEqual(overlappingGrants(linkerd('deploy', 'payments'), linkerd('deploy', 'ops')), []);
    assert.deepEqual(overlappingGrants(linkerd('deploy', 'payments'), linkerd('migrate', 'payments')), []);
    assert.deepEqual(overlappingGrants(linkerd('deploy', 'payments'), {} as GrantsSpec), []);
  });

  it('names the same Google service account', () => {
    const account = 'deployer@project.iam.gserviceaccount.com';
    assert.deepEqual(overlappingGrants(google(account), google(account)), [`google service account ${account}`]);
    assert.deepEqual(overlappingGrants(google(account), google(`other-${account}`)), []);
    assert.deepEqual(overlappingGrants(google(account), {} as GrantsSpec), []);
  });
});

describe('weakerRequirements', () => {
  const base = { jobRunning: true, sameProject: true };
  const require = (extra: Record<string, unknown> = {}): RequireSpec => ({ ...base, ...extra }) as RequireSpec;
  const deployment = (extra: Record<string, unknown>): RequireSpec => require({ deploymentApprovals: { min: 1, excludeTriggerer: false, ...extra } });
  const mergeRequest = (extra: Record<string, unknown>): RequireSpec =>
    require({ mergeRequestApprovals: { min: 1, excludeAuthor: false, excludeCommitters: false, excludeTriggerer: false, fresh: false, ...extra } });

  it('finds nothing when the earlier rule asks as much', () => {
    assert.deepEqual(weakerRequirements(require(), require()), []);
    assert.deepEqual(weakerRequirements(deployment({ min: 2 }), deployment({ min: 2 })), []);
    assert.deepEqual(weakerRequirements(mergeRequest({}), mergeRequest({})), []);
    assert.deepEqual(weakerRequirements(deployment({ fromGroups: ['ops'] }), deployment({ fromGroups: ['ops', 'sec'] })), []);
  });

  it('names checks the earlier rule turns off', () => {
    assert.deepEqual(weakerRequirements(require({ jobRunning: false, sameProject: false }), require()), ['jobRunning off', 'sameProject off']);
  });

  it('names fewer approvals, approvals from anyone or other groups', () => {
    assert.deepEqual(weakerRequirements(require(), deployment({ min: 2 })), ['no deployment approvals (the later rule needs 2)']);
    assert.deepEqual(weakerRequirements(deployment({ min: 1 }), deployment({ min: 2 })), ['1 deployment approvals instead of 2']);
    assert.deepEqual(weakerRequirements(deployment({}), deployment({ fromGroups: ['ops', 'sec'] })), ['deployment approvals from anyone, not only ops, sec']);
    assert.deepEqual(weakerRequirements(deployment({ fromGroups: ['ops', 'dev'] }), deployment({ fromGroups: ['ops'] })), ['deployment approvals from other groups']);
  });

  it('names each exclusion the earlier rule drops', () => {
    assert.deepEqual(weakerRequirements(deployment({}), deployment({ excludeTriggerer: true })), ['deployment approvals without excludeTriggerer']);
    assert.deepEqual(
      weakerRequirements(mergeRequest({}), mergeRequest({ excludeAuthor: true, excludeCommitters: true, excludeTriggerer: true, fresh: true })),
      ['excludeAuthor', 'excludeCommitters', 'excludeTriggerer', 'fresh'].map((exclusion) => `merge-request approvals without ${exclusion}`),
    );
  });
});

describe('shadowingBypass', () => {
  it('names the earlier rule, every shared grant and every weakness', () => {
    const [earlier, later] = rulesOf(
      { when: env('prod'), require: { jobRunning: false, sameProject: false }, grant: { token: { audiences: ['a', 'b'] } } },
      { when: env('prod'), grant: { token: { audiences: ['a', 'b'] } } },
    );
    assert.equal(shadowingBypass(earlier, later), 'rule earlier comes first, can match every pipeline this rule matches and grants token audience a, b '
      + 'with weaker requirements (jobRunning off; sameProject off): this rule\'s requirements can be bypassed');
  });
});
