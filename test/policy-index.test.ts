/**
 * The rule index must change no verdict: for generated policies and callers, evaluating only the rules the index
 * returns gives the same decision, reasons, fact needs and explanation as evaluating every rule in order, and
 * `policy check` finds exactly the bypasses and unreachable rules that comparing every pair of rules finds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parsePrincipal } from '../src/core/claims.js';
import { compilePolicy, type CompiledPolicy } from '../src/core/policy/compile.js';
import { decide, factNeeds, preEvaluate, type Decision } from '../src/core/policy/evaluate.js';
import { lintPolicy, shadows, type PolicyFinding } from '../src/core/policy/lint.js';
import { shadowingBypass } from '../src/core/policy/shadowing.js';
import { defaultIdTokenClaims, withOverrides } from '../src/dev/token-factory.js';
import { randomCaller, randomPolicy } from './support/random-policy.js';
import { seededRandom } from './support/seeded-random.js';

const NOW = new Date('2026-01-01T00:00:00Z');

const verdict = (decision: Decision) => (decision.allowed
  ? { allowed: true, rule: decision.rule.name, approvals: decision.approvals }
  : { allowed: false, code: decision.code, detail: decision.detail, reasons: decision.reasons });

/** `policy check`'s shadowing findings as they were computed before the index: each rule against every earlier one. */
function pairwiseFindings(policy: CompiledPolicy, allowShadowing: boolean): PolicyFinding[] {
  const findings: PolicyFinding[] = [];
  policy.rules.forEach((rule, index) => {
    const earlierRules = policy.rules.slice(0, index);
    const bypassing = earlierRules.map((earlier) => shadowingBypass(earlier, rule)).find((bypass) => bypass !== undefined);
    if (bypassing !== undefined) {
      findings.push({ severity: allowShadowing ? 'accepted' : 'error', rule: rule.name, message: bypassing });
      return;
    }
    const shadowing = earlierRules.find((earlier) => shadows(earlier, rule));
    if (shadowing) findings.push({ severity: 'error', rule: rule.name, message: `unreachable: rule ${shadowing.name} comes first and always matches when this one would` });
  });
  return findings;
}

describe('indexed evaluation equals evaluating every rule in order', () => {
  it('gives the same decision, reasons, fact needs and explanation for 300 generated policies, 20 callers each', () => {
    const random = seededRandom(15_015);
    let considered = 0;
    let total = 0;
    let allowed = 0;
    for (let round = 0; round < 300; round += 1) {
      const policy = randomPolicy(random, 1 + Math.floor(random() * 40));
      for (let caller = 0; caller < 20; caller += 1) {
        const { principal, request } = randomCaller(random);
        const label = `policy ${round}, caller ${caller}`;
        const indexed = preEvaluate(policy, principal, request);
        const linear = preEvaluate(policy, principal, request, { everyRule: true });
        assert.deepEqual(indexed.candidates.map((rule) => rule.name), linear.candidates.map((rule) => rule.name), label);
        assert.deepEqual([...indexed.visible], [...linear.visible], label);
        assert.deepEqual(factNeeds(indexed), factNeeds(linear), label);

        const facts = { jobStatus: random() < 0.8 ? 'running' : 'success', approvals: {} };
        const fromIndex = decide(indexed, facts, NOW);
        const fromAll = decide(linear, facts, NOW);
        assert.deepEqual(verdict(fromIndex), verdict(fromAll), label);
        const shown = (decision: Decision) => decision.evaluations.filter((evaluation) => linear.visible.has(evaluation.rule));
        assert.deepEqual(shown(fromIndex), shown(fromAll), `${label}: what explain shows`);
        const consideredNames = new Set(fromIndex.evaluations.map((evaluation) => evaluation.rule));
        assert.deepEqual(fromIndex.evaluations, fromAll.evaluations.filter((evaluation) => consideredNames.has(evaluation.rule)), `${label}: same evaluations, in policy order`);
        for (const evaluation of fromAll.evaluations) {
          if (evaluation.applies || linear.visible.has(evaluation.rule)) assert.ok(consideredNames.has(evaluation.rule), `${label}: ${evaluation.rule} left out`);
        }
        considered += consideredNames.size;
        total += fromAll.evaluations.length;
        if (fromAll.allowed) allowed += 1;
      }
    }
    assert.ok(considered < total * 0.6, `the index leaves rules out (${considered} of ${total} evaluated)`);
    assert.ok(allowed > 300 && allowed < 5700, `both verdicts occur (${allowed} of 6000 allowed)`);
  });

  it('lets an earlier rule without an exact project win over a later exact-project rule, as in file order', () => {
    const policy = compilePolicy([{ source: 'p.yaml', data: parse(`
version: 1
rules:
  - name: any-issuer-by-path
    when: { project_path: payments/api, environment: production }
    grant: { token: { audiences: [a] } }
  - name: by-pattern
    issuer: https://gitlab.example.com
    when: { project_path: { glob: "payments/*" } }
    grant: { token: { audiences: [a] } }
  - name: by-id
    issuer: https://gitlab.example.com
    when: { project_id: "20" }
    grant: { token: { audiences: [a] } }
  - name: other-issuer
    issuer: https://gitlab.other.example
    when: { project_id: "20" }
    grant: { token: { audiences: [a] } }
  - name: other-project
    when: { project_id: "21" }
    grant: { token: { audiences: [a] } }
`) }]);
    const principal = parsePrincipal(withOverrides(defaultIdTokenClaims({ issuer: 'https://gitlab.example.com', audience: 'b' }), { environment: 'staging' }), 'b');
    const preliminary = preEvaluate(policy, principal, { token: {} });
    assert.deepEqual(preliminary.evaluations.map((evaluation) => evaluation.rule), ['any-issuer-by-path', 'by-pattern', 'by-id']);
    const decision = decide(preliminary, { jobStatus: 'running', approvals: {} }, NOW);
    assert.equal(decision.allowed && decision.rule.name, 'by-pattern');
  });
});

describe('policy check with the index finds what comparing every pair finds', () => {
  it('the same bypass and unreachable findings, in the same order, for 400 generated policies', () => {
    const random = seededRandom(15_016);
    const seen = { bypass: 0, unreachable: 0 };
    for (let round = 0; round < 400; round += 1) {
      const policy = randomPolicy(random, 2 + Math.floor(random() * (round % 10 === 0 ? 150 : 30)));
      const allowShadowing = random() < 0.3;
      const expected = pairwiseFindings(policy, allowShadowing);
      const actual = lintPolicy(policy, { allowShadowing }).filter((finding) => finding.severity !== 'warning');
      assert.deepEqual(actual, expected, `policy ${round}`);
      for (const finding of expected) seen[finding.message.startsWith('unreachable') ? 'unreachable' : 'bypass'] += 1;
    }
    assert.ok(seen.bypass > 50 && seen.unreachable > 50, `both kinds occur (${JSON.stringify(seen)})`);
  });
});
