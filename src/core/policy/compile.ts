/**
 * The compile step: validated policy data → rules with ready matchers. The server, `policy check`, `policy test` and
 * `policy explain` all go through `compilePolicy`, so their verdicts cannot diverge.
 */
import { PATH_CLAIMS } from '../claims.js';
import { PatternError, compileGlob, compileRegex, type PatternMatcher } from './patterns.js';
import { buildRuleIndex, type RuleIndex } from './rule-index.js';
import { policyFileSchema, type GrantsSpec, type MatcherSpec, type RequireSpec, type RuleSpec } from './schema.js';

export interface CompiledMatcher {
  readonly claim: string;
  /** How the policy wrote it, for explanations: "payments/api", "any of [a, b]", "glob payments/*". */
  readonly expected: string;
  readonly spec: MatcherSpec;
  matches(value: string | undefined): boolean;
}

export interface CompiledRule {
  readonly name: string;
  readonly description: string | undefined;
  readonly issuer: string | undefined;
  readonly source: string;
  readonly index: number;
  readonly conditions: readonly CompiledMatcher[];
  readonly require: RequireSpec;
  readonly grant: GrantsSpec;
}

export interface CompiledPolicy {
  readonly rules: readonly CompiledRule[];
  readonly sources: readonly string[];
  /** The rules by issuer and exact project (rule-index.ts): what a request evaluates. */
  readonly index: RuleIndex;
}

export interface PolicyIssue {
  readonly source: string;
  readonly path: string;
  readonly message: string;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly issues: readonly PolicyIssue[];
  constructor(issues: readonly PolicyIssue[]) {
    super(issues.map((issue) => `${issue.source}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`).join('\n'));
    this.issues = issues;
  }
}

/**
 * Compiled patterns by what determines them: many teams write the same globs ("review/*", "refs/heads/*"), and compiling
 * one on the linear-time engine costs far more than matching with it. One cache per compilePolicy call.
 */
type PatternCache = Map<string, PatternMatcher>;

function cachedPattern(cache: PatternCache, key: string, compile: () => PatternMatcher): PatternMatcher {
  let pattern = cache.get(key);
  if (pattern === undefined) {
    pattern = compile();
    cache.set(key, pattern);
  }
  return pattern;
}

function compileMatcher(claim: string, spec: MatcherSpec, cache: PatternCache): CompiledMatcher {
  if (typeof spec === 'string') {
    return { claim, spec, expected: spec, matches: (value) => value === spec };
  }
  if (Array.isArray(spec)) {
    const allowed = new Set(spec);
    return { claim, spec, expected: `any of [${spec.join(', ')}]`, matches: (value) => value !== undefined && allowed.has(value) };
  }
  const allowSlash = spec.allowSlash === true;
  const pathClaim = PATH_CLAIMS.has(claim);
  const pattern = 'glob' in spec
    ? cachedPattern(cache, `glob ${allowSlash} ${spec.glob}`, () => compileGlob(spec.glob, allowSlash))
    : cachedPattern(cache, `regex ${allowSlash} ${pathClaim} ${spec.regex}`, () => compileRegex(spec.regex, { pathClaim, allowSlash }));
  const expected = 'glob' in spec ? `glob ${spec.glob}` : `regex ${spec.regex}`;
  return { claim, spec, expected, matches: (value) => value !== undefined && pattern.test(value) };
}

export interface PolicyDocument {
  readonly source: string;
  readonly data: unknown;
}

/** Validate and compile policy documents (in the order given); throws PolicyError listing every problem. */
export function compilePolicy(documents: readonly PolicyDocument[]): CompiledPolicy {
  const issues: PolicyIssue[] = [];
  const rules: CompiledRule[] = [];
  const seen = new Map<string, string>();
  const patterns: PatternCache = new Map();
  for (const document of documents) {
    const parsed = policyFileSchema.safeParse(document.data);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        issues.push({ source: document.source, path: issue.path.join('.'), message: issue.message });
      }
      continue;
    }
    parsed.data.rules.forEach((spec: RuleSpec, position) => {
      const previous = seen.get(spec.name);
      if (previous !== undefined) {
        issues.push({ source: document.source, path: `rules.${position}.name`, message: `duplicate rule name ${spec.name} (first in ${previous})` });
        return;
      }
      seen.set(spec.name, document.source);
      const conditions: CompiledMatcher[] = [];
      for (const [claim, matcher] of Object.entries(spec.when)) {
        if (matcher === undefined) continue;
        try {
          conditions.push(compileMatcher(claim, matcher, patterns));
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          issues.push({ source: document.source, path: `rules.${position}.when.${claim}`, message: err.message });
        }
      }
      rules.push({
        name: spec.name,
        description: spec.description,
        issuer: spec.issuer,
        source: document.source,
        index: rules.length,
        conditions,
        require: spec.require,
        grant: spec.grant,
      });
    });
  }
  if (issues.length > 0) throw new PolicyError(issues);
  return Object.freeze({ rules: Object.freeze(rules), sources: documents.map((document) => document.source), index: buildRuleIndex(rules) });
}
