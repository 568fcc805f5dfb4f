/**
 * Compiled rules indexed by issuer and by their exact project_id or project_path, so that with thousands of rules a
 * request evaluates only the rules that can apply to it, and `policy check` compares a rule only with the earlier
 * rules that can cover it.
 *
 * Each rule sits in one partition: its issuer's, or the any-issuer one when it names none. Inside it, a rule with an
 * exact (string or list) project_id is filed under each of those ids; otherwise one with an exact project_path under
 * each path; every other rule (patterns, or no project condition) is a fallback of the partition. A lookup gathers the
 * few lists that can hold a matching rule and merges them by rule index, so callers still see rules in policy order
 * and first-match semantics are those of the full list: a rule left out has an issuer or an exact project condition
 * that certainly fails.
 */
import type { CompiledMatcher, CompiledRule } from './compile.js';

const KEY_CLAIMS = ['project_id', 'project_path'] as const;
type KeyClaim = (typeof KEY_CLAIMS)[number];

interface Partition {
  /** Rules filed under each exact value of their key claim. */
  readonly byValue: Readonly<Record<KeyClaim, Map<string, CompiledRule[]>>>;
  /** Every rule keyed by that claim, in policy order. */
  readonly keyed: Readonly<Record<KeyClaim, CompiledRule[]>>;
  readonly fallback: CompiledRule[];
}

export interface RuleIndex {
  readonly byIssuer: ReadonlyMap<string, Partition>;
  readonly anyIssuer: Partition;
}

const emptyPartition = (): Partition => ({
  byValue: { project_id: new Map(), project_path: new Map() },
  keyed: { project_id: [], project_path: [] },
  fallback: [],
});

const conditionOn = (rule: CompiledRule, claim: string): CompiledMatcher | undefined =>
  rule.conditions.find((condition) => condition.claim === claim);

/** The exact values a condition accepts, or undefined for a pattern. */
function exactValues(matcher: CompiledMatcher | undefined): readonly string[] | undefined {
  if (matcher === undefined) return undefined;
  if (typeof matcher.spec === 'string') return [matcher.spec];
  if (Array.isArray(matcher.spec)) return [...new Set(matcher.spec)];
  return undefined;
}

/** Builds the index once, at compile time; rules must be in policy order. */
export function buildRuleIndex(rules: readonly CompiledRule[]): RuleIndex {
  const byIssuer = new Map<string, Partition>();
  const anyIssuer = emptyPartition();
  for (const rule of rules) {
    let partition = anyIssuer;
    if (rule.issuer !== undefined) {
      partition = byIssuer.get(rule.issuer) ?? emptyPartition();
      byIssuer.set(rule.issuer, partition);
    }
    const claim = KEY_CLAIMS.find((candidate) => exactValues(conditionOn(rule, candidate)) !== undefined);
    if (claim === undefined) {
      partition.fallback.push(rule);
      continue;
    }
    partition.keyed[claim].push(rule);
    for (const value of exactValues(conditionOn(rule, claim)) ?? []) {
      const bucket = partition.byValue[claim].get(value);
      if (bucket) bucket.push(rule);
      else partition.byValue[claim].set(value, [rule]);
    }
  }
  return { byIssuer, anyIssuer };
}

/** Merges lists that are each in policy order into one, keeping rules with an index below `below`. */
function mergeByIndex(lists: ReadonlyArray<readonly CompiledRule[]>, below = Number.POSITIVE_INFINITY): readonly CompiledRule[] {
  const nonEmpty = lists.filter((list) => list.length > 0);
  if (nonEmpty.length === 1 && below === Number.POSITIVE_INFINITY) return nonEmpty[0] as readonly CompiledRule[];
  const heads = nonEmpty.map(() => 0);
  const merged: CompiledRule[] = [];
  for (;;) {
    let best = -1;
    let bestIndex = below;
    nonEmpty.forEach((list, which) => {
      const rule = list[heads[which] as number];
      if (rule !== undefined && rule.index < bestIndex) {
        best = which;
        bestIndex = rule.index;
      }
    });
    if (best < 0) return merged;
    const list = nonEmpty[best] as readonly CompiledRule[];
    merged.push(list[heads[best] as number] as CompiledRule);
    heads[best] = (heads[best] as number) + 1;
  }
}

function partitionsFor(index: RuleIndex, issuer: string | undefined): Partition[] {
  const own = issuer === undefined ? undefined : index.byIssuer.get(issuer);
  return own === undefined ? [index.anyIssuer] : [own, index.anyIssuer];
}

/**
 * The rules that can apply to a token of `issuer` for this project, in policy order: every other rule has an issuer
 * or an exact project_id / project_path condition that fails for it.
 */
export function rulesFor(index: RuleIndex, issuer: string, project: { readonly id?: string; readonly path?: string }): readonly CompiledRule[] {
  const lists: (readonly CompiledRule[])[] = [];
  for (const partition of partitionsFor(index, issuer)) {
    const byId = project.id === undefined ? undefined : partition.byValue.project_id.get(project.id);
    const byPath = project.path === undefined ? undefined : partition.byValue.project_path.get(project.path);
    if (byId) lists.push(byId);
    if (byPath) lists.push(byPath);
    lists.push(partition.fallback);
  }
  return mergeByIndex(lists);
}

/** One value a condition certainly accepts when it is an exact string, a list or a glob without wildcards. */
function someAcceptedValue(matcher: CompiledMatcher): string | undefined {
  const { spec } = matcher;
  if (typeof spec === 'string') return spec;
  if (Array.isArray(spec)) return spec[0];
  if ('glob' in spec && !/[*?]/.test(spec.glob)) return spec.glob;
  return undefined;
}

/**
 * The earlier rules that may match every pipeline `later` matches, in policy order: a superset of those for which the
 * pairwise checks of `policy check` (shadowing, unreachable rules) can hold. An earlier rule with an exact project_id
 * (or project_path) covers `later` only if `later` has that condition and every value it accepts is among the earlier
 * rule's, so it suffices to look under one value `later` accepts; a `later` with a pattern there is compared with every
 * rule keyed by that claim.
 */
export function earlierRulesThatMayCover(index: RuleIndex, later: CompiledRule): readonly CompiledRule[] {
  const lists: (readonly CompiledRule[])[] = [];
  for (const partition of partitionsFor(index, later.issuer)) {
    for (const claim of KEY_CLAIMS) {
      const matcher = conditionOn(later, claim);
      if (matcher === undefined) continue;
      const value = someAcceptedValue(matcher);
      const list = value === undefined ? partition.keyed[claim] : partition.byValue[claim].get(value);
      if (list) lists.push(list);
    }
    lists.push(partition.fallback);
  }
  return mergeByIndex(lists, later.index);
}
