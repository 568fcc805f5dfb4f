/**
 * Every registered grant kind takes part in the shadowing check of `policy check`: its module says when two rules'
 * sections grant the same credential, and an approval-gated rule behind a broad rule granting that credential is
 * reported, whatever the kind. A kind added to the registry without a row here does not compile.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { GRANT_KINDS, GRANTS, type GrantKind } from '../src/core/grants.js';
import { compilePolicy } from '../src/core/policy/compile.js';
import { lintPolicy } from '../src/core/policy/lint.js';

/** Per kind: a `grant.<kind>` section, one that grants the same credential, and one that grants another. */
const SECTIONS: { readonly [K in GrantKind]: { readonly section: string; readonly same: string; readonly other: string } } = {
  google: {
    section: '{ serviceAccount: deployer@p.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/cloud-platform] }',
    same: '{ serviceAccount: deployer@p.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/spanner.admin] }',
    other: '{ serviceAccount: reader@p.iam.gserviceaccount.com, scopes: [https://www.googleapis.com/auth/cloud-platform] }',
  },
  linkerd: {
    section: '{ serviceAccount: deploy, namespace: payments }',
    same: '{ serviceAccount: deploy, namespace: payments, lifetime: 10m }',
    other: '{ serviceAccount: deploy, namespace: review }',
  },
  token: {
    section: '{ audiences: [https://deploy-api.internal, https://other.internal] }',
    same: '{ audiences: [https://deploy-api.internal] }',
    other: '{ audiences: [https://review.internal] }',
  },
};

function overlapOf<K extends GrantKind>(kind: K, earlier: string, later: string): string | undefined {
  const module = GRANTS[kind];
  return module.overlaps(module.policySchema.parse(parse(earlier)), module.policySchema.parse(parse(later)));
}

/** A broad rule without requirements, then an approval-gated rule for the same project; each grants one section of `kind`. */
function bypassFindings(kind: GrantKind, earlier: string, later: string): string[] {
  const policy = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: broad
    when: { project_id: "20" }
    require: { jobRunning: false }
    grant: { ${kind}: ${earlier} }
  - name: gated
    when: { project_id: "20", environment: production }
    require: { deploymentApprovals: { min: 2 } }
    grant: { ${kind}: ${later} }
`) }]);
  return lintPolicy(policy, { allowShadowing: false }).filter((finding) => /can be bypassed/.test(finding.message)).map((finding) => `${finding.rule}: ${finding.message}`);
}

describe('every grant kind in the shadowing check', () => {
  it('has a row here for every registered kind, and nothing else', () => {
    assert.deepEqual(Object.keys(SECTIONS), [...GRANT_KINDS]);
  });

  for (const kind of GRANT_KINDS) {
    const { section, same, other } = SECTIONS[kind];

    it(`${kind}: the module names the credential two sections both grant, and nothing for another credential`, () => {
      assert.equal(typeof GRANTS[kind].overlaps, 'function');
      const phrase = overlapOf(kind, section, same);
      assert.ok(phrase !== undefined && phrase.startsWith(`${kind} `), `${kind}: ${String(phrase)}`);
      assert.notEqual(overlapOf(kind, section, section), undefined, 'a section grants what it grants');
      assert.equal(overlapOf(kind, section, other), undefined);
      assert.equal(overlapOf(kind, other, section), undefined);
    });

    it(`${kind}: policy check reports a broad rule before an approval-gated one granting the same credential`, () => {
      const findings = bypassFindings(kind, section, same);
      assert.equal(findings.length, 1, findings.join('\n'));
      assert.ok(findings[0]?.startsWith('gated: rule broad comes first'), findings[0]);
      assert.ok(findings[0]?.includes(`grants ${overlapOf(kind, section, same) ?? '?'} with weaker requirements`), findings[0]);
      assert.deepEqual(bypassFindings(kind, section, other), []);
    });
  }
});
