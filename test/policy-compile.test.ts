/** The policy format: strict schema, pattern compilation, glob/regex semantics and `policy check` findings. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { compilePolicy, PolicyError, type CompiledPolicy } from '../src/core/policy/compile.js';
import { lintPolicy } from '../src/core/policy/lint.js';
import { compileGlob, compileRegex, PatternError } from '../src/core/policy/patterns.js';
import { POLICY_SCHEMA_PATH, renderPolicySchema } from '../scripts/write-schemas.js';

function compile(yaml: string): CompiledPolicy {
  return compilePolicy([{ source: 'test.yaml', data: parse(yaml) }]);
}

function compileError(yaml: string): string {
  try {
    compile(yaml);
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return err.message;
  }
  assert.fail('expected the policy to be refused');
}

const rule = (when: string, extra = '') => `version: 1\nrules:\n  - name: r\n    when: ${when}\n    grant: { token: { audiences: [a] } }\n${extra}`;

describe('policy schema', () => {
  const refused: Array<{ name: string; yaml: string; message: RegExp }> = [
    { name: 'an unknown top-level key', yaml: 'version: 1\nrules: []\nextra: 1\n', message: /extra|Unrecognized/i },
    { name: 'an unknown rule key', yaml: rule('{ project_id: "1" }', '    grants: {}\n'), message: /grants|Unrecognized/i },
    { name: 'an unknown claim in when', yaml: rule('{ projectid: "1" }'), message: /projectid|Unrecognized/i },
    { name: 'an empty when', yaml: rule('{}'), message: /at least one condition/ },
    { name: 'a rule with no grant', yaml: 'version: 1\nrules:\n  - name: r\n    when: { project_id: "1" }\n    grant: {}\n', message: /at least one of google, linkerd, token/ },
    { name: 'a bad rule name', yaml: rule('{ project_id: "1" }').replace('name: r', 'name: Bad_Name'), message: /rules\.0\.name: must match \[a-z0-9-\]\{1,63\}/ },
    { name: 'a group that is not a GitLab group path', yaml: rule('{ project_id: "1" }', '    require: { deploymentApprovals: { min: 1, fromGroups: ["-team a"] } }\n'), message: /rules\.0\.require\.deploymentApprovals\.fromGroups\.0: must be a GitLab group path or id/ },
    { name: 'version 2', yaml: 'version: 2\nrules: []\n', message: /version/ },
    { name: 'a token lifetime over 1h', yaml: 'version: 1\nrules:\n  - name: r\n    when: { project_id: "1" }\n    grant: { token: { audiences: [a], lifetime: 2h } }\n', message: /at most 60 minutes/ },
    { name: 'a linkerd service account that is not a DNS label', yaml: 'version: 1\nrules:\n  - name: r\n    when: { project_id: "1" }\n    grant: { linkerd: { serviceAccount: Deploy_SA, namespace: ci } }\n', message: /DNS label/ },
    { name: 'an unknown requirement', yaml: rule('{ project_id: "1" }', '    require: { approvals: 2 }\n'), message: /approvals|Unrecognized/i },
    { name: 'a glob with an unknown option', yaml: rule('{ project_path: { glob: "a/*", caseInsensitive: true } }'), message: /rules\.0\.when\.project_path: Unrecognized key: "caseInsensitive"/ },
  ];
  for (const testCase of refused) {
    it(`refuses ${testCase.name}`, () => {
      assert.match(compileError(testCase.yaml), testCase.message);
    });
  }

  it('refuses duplicate rule names across files', () => {
    const doc = parse(rule('{ project_id: "1" }'));
    assert.throws(() => compilePolicy([{ source: 'a.yaml', data: doc }, { source: 'b.yaml', data: doc }]), /duplicate rule name r \(first in a.yaml\)/);
  });

  it('reads YAML true and numbers as the strings GitLab sends', () => {
    const policy = compile(rule('{ ref_protected: true, project_id: 20 }'));
    const conditions = policy.rules[0]?.conditions ?? [];
    const protectedRef = conditions.find((condition) => condition.claim === 'ref_protected');
    const projectId = conditions.find((condition) => condition.claim === 'project_id');
    assert.equal(protectedRef?.matches('true'), true);
    assert.equal(protectedRef?.matches('True'), false);
    assert.equal(projectId?.matches('20'), true);
  });

  it('fills requirement defaults: jobRunning and sameProject on', () => {
    const policy = compile(rule('{ project_id: "1" }'));
    assert.deepEqual(policy.rules[0]?.require, { jobRunning: true, sameProject: true });
  });

  it('publishes a JSON Schema that matches the code (run `npm run schemas` after changing the format)', async () => {
    assert.equal(await readFile(POLICY_SCHEMA_PATH, 'utf8'), renderPolicySchema());
  });
});

describe('glob semantics', () => {
  const table: Array<[glob: string, value: string, matches: boolean, allowSlash?: boolean]> = [
    ['payments/*', 'payments/api', true],
    ['payments/*', 'payments/sub/api', false],
    ['payments/**', 'payments/sub/api', true],
    ['payments/*', 'payments/', true],
    ['payments/*', 'paymentsX/api', false],
    ['review/*', 'review/a/b', true, true],
    ['v?.*', 'v1.2', true],
    ['v?.*', 'v1/2', false],
    ['a.b', 'aXb', false],
    ['(x)', '(x)', true],
    ['*', '', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'a/xb', false],
    ['a?b', 'a/b', true, true],
    ['a?b', 'ab', false, true],
    ['a?b', 'a/b', false],
  ];
  for (const [glob, value, expected, allowSlash] of table) {
    it(`${glob}${allowSlash ? ' (allowSlash)' : ''} ${expected ? 'matches' : 'does not match'} "${value}"`, () => {
      assert.equal(compileGlob(glob, allowSlash === true).test(value), expected);
    });
  }
});

describe('regex compilation', () => {
  const matches: Array<[regex: string, value: string, expected: boolean, pathClaim: boolean, allowSlash?: boolean]> = [
    ['main|develop', 'main', true, false],
    ['main|develop', 'mainline', false, false],
    ['main|develop', 'xdevelop', false, false],
    ['refs/heads/release-.*', 'refs/heads/release-1/evil', false, true],
    ['refs/heads/release-.*', 'refs/heads/release-1/evil', true, true, true],
    ['refs/heads/[^x]+', 'refs/heads/a/b', false, true],
    ['refs/heads/\\S+', 'refs/heads/a/b', false, true],
    ['refs/heads/\\S+', 'refs/heads/ab', true, true],
    ['payments/[a-z]+', 'payments/api', true, true],
    ['payments/[\\w.-]+', 'payments/my-api.v2', true, true],
    ['payments/[\\w.-]+', 'payments/sub/api', false, true],
    ['payments/[-a-z]+', 'payments/a-b', true, true],
    ['payments/[\\x21-\\x7e]+', 'payments/sub/evil', true, true, true],
    ['refs/heads/[^x]+', 'refs/heads/ab', true, true],
    ['refs/heads/[^x]+', 'refs/heads/a^b', true, true],
    ['refs/[a-z]+/.*', 'refs/a/b/c', false, true],
    ['refs/[a-z]+/.*', 'refs/a/bc', true, true],
    // a ] first in a class is a member, so the class (and the literal . in it) goes on to the next ]
    ['x[].]+', 'x].', true, true],
    ['x[].]+', 'xa', false, true],
    ['x[].]+', 'x/', false, true],
    ['x[-\\w]+', 'x-a', true, true],
    ['x[!-.]+', 'x!.', true, true],
    ['v\\W\\D', 'v-x', true, true],
    ['v\\W\\D', 'v/x', false, true],
    ['v\\W\\D', 'v-/', false, true],
  ];
  for (const [regex, value, expected, pathClaim, allowSlash] of matches) {
    it(`${regex}${pathClaim ? ' on a path claim' : ''}${allowSlash ? ' with allowSlash' : ''} ${expected ? 'matches' : 'does not match'} "${value}"`, () => {
      assert.equal(compileRegex(regex, { pathClaim, allowSlash: allowSlash === true }).test(value), expected);
    });
  }

  const refused: Array<[regex: string, why: RegExp]> = [
    ['(?=main)main', /lookaround/],
    ['(?!x).*', /lookaround/],
    ['(?<=a)b', /lookaround/],
    ['(a)\\1', /backreferences/],
    ['(?<n>a)\\k<n>', /backreferences/],
    ['[', /invalid regex/],
    // JavaScript syntax that RE2 does not have: refused, so a policy means the same on every RE2 engine.
    ['\\u0041', /RE2 syntax/],
    ['a\\cA', /RE2 syntax/],
    ['a{2,1001}', /RE2 syntax/],
    ['[\\S]+', /allowSlash/],
    ['[!-~]+', /allowSlash/],
    // review findings: ways around the narrowing that must be refused without allowSlash
    ['payments/[\\x21-\\x7e]+', /escaped endpoint/],
    ['payments/[\\t-~]+', /escaped endpoint/],
    ['payments/[\\0-z]+', /escaped endpoint/],
    ['payments/[\\u0021-\\u007e]+', /escaped endpoint/],
    ['payments/[\\p{P}a-z]+', /allowSlash/],
    ['payments\\P{L}api', /allowSlash/],
    ['refs/heads/release-[\\w.\\x2d-\\x7e]+', /escaped endpoint/],
    ['payments/[+-/]+', /spanning/],
    ['payments/[/-9]+', /spanning/],
    ['payments/a\\', /invalid regex/],
  ];
  for (const [regex, why] of refused) {
    it(`refuses ${regex}`, () => {
      assert.throws(() => compileRegex(regex, { pathClaim: true, allowSlash: false }), (err: unknown) => err instanceof PatternError && why.test(err.message));
    });
  }

  it('names what RE2 found wrong, without its "error parsing regexp" prefix', () => {
    assert.throws(() => compileRegex('[', { pathClaim: false, allowSlash: false }), { name: 'PatternError', message: 'invalid regex (RE2 syntax): missing closing ]: `[)$`' });
  });

  it('reports a regex that is not RE2 at policy load with its location', () => {
    assert.match(compileError(rule('{ ref_path: { regex: "(?=refs)refs/.*" } }')), /rules\.0\.when\.ref_path: lookaround is not allowed/);
    assert.match(compileError(rule('{ ref_path: { regex: "refs/\\\\u0041" } }')), /rules\.0\.when\.ref_path: invalid regex \(RE2 syntax\)/);
  });

  // A backtracking engine needs about 2^n steps for these against n repeated characters and a mismatching tail; with
  // n in the thousands it would never finish, and the suite's timeout is the failure. Linear time answers at once.
  const run = 'a'.repeat(20_000);
  const adversarial: Array<[what: string, pattern: string, refused: string, accepted: string]> = [
    ['the overlapping alternation from a real attack', 'review/([a-z]|[0-9a-z])*', `review/${run}!`, `review/${run}`],
    ['nested quantifiers', '(a+)+b', `${run}c`, `${run}b`],
    ['a star of an optional group', '(a?a?)*x', `${run}y`, `${run}x`],
  ];
  for (const [what, pattern, refused, accepted] of adversarial) {
    it(`matches ${what} in linear time`, () => {
      const matcher = compileRegex(pattern, { pathClaim: true, allowSlash: false });
      assert.equal(matcher.test(refused), false);
      assert.equal(matcher.test(accepted), true);
    });
  }

  it('runs a glob with many stars in linear time', () => {
    const matcher = compileGlob('*a*a*a*a*a*a*a*a*a*a*b', false);
    assert.equal(matcher.test('a'.repeat(20_000)), false);
    assert.equal(matcher.test(`${'a'.repeat(20_000)}b`), true);
  });
});

describe('policy check findings', () => {
  const policy = compile(`
version: 1
rules:
  - name: by-path
    when: { project_path: payments/api, environment: production }
    grant: { token: { audiences: [a] } }
  - name: pinned
    when: { project_id: "20", environment: production, ci_config_ref_uri: gitlab.example.com/p//.gitlab-ci.yml@refs/heads/main }
    grant: { token: { audiences: [a] } }
  - name: shadowed
    when: { project_id: "20", environment: production, ci_config_ref_uri: gitlab.example.com/p//.gitlab-ci.yml@refs/heads/main, ref_protected: "true" }
    grant: { token: { audiences: [a] } }
  - name: stricter-later
    when: { project_id: "20", environment: production, ci_config_ref_uri: gitlab.example.com/p//.gitlab-ci.yml@refs/heads/main }
    require: { jobRunning: false }
    grant: { token: { audiences: [b] } }
`);
  const findings = lintPolicy(policy);
  const about = (name: string) => findings.filter((finding) => finding.rule === name).map((finding) => finding.message).join(' | ');

  it('warns about a path-only binding', () => assert.match(about('by-path'), /path only/));
  it('warns about a production rule without a pinned ci_config_ref_uri', () => assert.match(about('by-path'), /pin ci_config_ref_uri/));
  it('finds nothing to say about a pinned, id-bound rule', () => assert.equal(about('pinned'), ''));
  it('reports a rule an earlier rule always shadows as an error', () => {
    assert.ok(findings.some((finding) => finding.rule === 'shadowed' && finding.severity === 'error' && /unreachable: rule pinned/.test(finding.message)));
  });
  it('does not call a rule with other grants unreachable', () => assert.doesNotMatch(about('stricter-later'), /unreachable/));
});
