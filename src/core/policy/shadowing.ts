/**
 * Approval bypass by shadowing: the first rule in file order that matches and allows the requested grant wins, so an
 * earlier rule that can match every pipeline a later rule matches, and grants what the later one grants with weaker
 * requirements, makes the later rule's requirements decoration. Deciding whether one pattern's language contains
 * another's is not attempted in general; when we cannot show that the later rule matches something the earlier does not,
 * we report (a false alarm is one `--allow-shadowing` away, a missed bypass is an incident).
 */
import { GRANT_KINDS, GRANTS, type GrantKind, type GrantSpecOf } from '../grants.js';
import type { CompiledMatcher, CompiledRule } from './compile.js';
import type { DeploymentApprovalsSpec, GrantsSpec, MatcherSpec, MergeRequestApprovalsSpec, RequireSpec } from './schema.js';

const GLOB_WILDCARD = /\*\*|\*|\?/g;

/** A glob without wildcards is one exact string. */
function literalOf(spec: MatcherSpec): string | undefined {
  if (typeof spec === 'string') return spec;
  if (!Array.isArray(spec) && 'glob' in spec && !/[*?]/.test(spec.glob)) return spec.glob;
  return undefined;
}

/**
 * Strings the glob matches, one per way of filling its wildcards (empty, a letter, punctuation, a path when the
 * wildcard may cross `/`). Only strings the matcher itself accepts are kept.
 */
function globWitnesses(matcher: CompiledMatcher, glob: string): string[] {
  const fillings = ['', 'a', 'Z9', '-_.', 'a/b'];
  return fillings.map((filling) => glob.replace(GLOB_WILDCARD, (wildcard) => (wildcard === '?' ? filling.slice(0, 1) || 'a' : filling)))
    .filter((witness) => matcher.matches(witness));
}

/**
 * Whether everything `later` accepts may also be accepted by `earlier` (false only when we can show a value `later`
 * accepts and `earlier` refuses, or when both are finite sets).
 */
function mayContain(earlier: CompiledMatcher, later: CompiledMatcher): boolean {
  const laterLiteral = literalOf(later.spec);
  if (laterLiteral !== undefined) return earlier.matches(laterLiteral);
  if (Array.isArray(later.spec)) return later.spec.every((value) => earlier.matches(value));
  if (JSON.stringify(earlier.spec) === JSON.stringify(later.spec)) return true;
  // `later` is a pattern that matches more than one string (or we cannot tell): an exact or a list contains it only
  // if some of its values are among them; a pattern is probed with the values the later glob matches.
  if (literalOf(earlier.spec) !== undefined || Array.isArray(earlier.spec)) {
    const finite = Array.isArray(earlier.spec) ? earlier.spec : [literalOf(earlier.spec) as string];
    return finite.some((value) => later.matches(value));
  }
  if (typeof later.spec === 'object' && 'glob' in later.spec) return globWitnesses(later, later.spec.glob).every((witness) => earlier.matches(witness));
  return true;
}

/** Conservatively: every pipeline `later` matches, `earlier` matches too. */
export function conditionsCover(earlier: CompiledRule, later: CompiledRule): boolean {
  if (earlier.issuer !== undefined && earlier.issuer !== later.issuer) return false;
  return earlier.conditions.every((condition) => {
    const counterpart = later.conditions.find((candidate) => candidate.claim === condition.claim);
    return counterpart !== undefined && mayContain(condition, counterpart);
  });
}

function overlapOf<K extends GrantKind>(kind: K, earlier: GrantSpecOf<K> | undefined, later: GrantSpecOf<K> | undefined): string | undefined {
  return earlier !== undefined && later !== undefined ? GRANTS[kind].overlaps(earlier, later) : undefined;
}

/** The grants both rules give, one phrase per kind in registry order (each kind's module says what "the same" is). */
export function overlappingGrants(earlier: GrantsSpec, later: GrantsSpec): string[] {
  return GRANT_KINDS.flatMap((kind) => overlapOf(kind, earlier[kind], later[kind]) ?? []);
}

function weakerApprovals<T extends DeploymentApprovalsSpec | MergeRequestApprovalsSpec>(
  what: string,
  earlier: T | undefined,
  later: T | undefined,
  exclusions: ReadonlyArray<keyof T & string>,
): string[] {
  if (!later) return [];
  if (!earlier) return [`no ${what} (the later rule needs ${later.min})`];
  const weaker: string[] = [];
  if (earlier.min < later.min) weaker.push(`${earlier.min} ${what} instead of ${later.min}`);
  if (later.fromGroups && !(earlier.fromGroups ?? []).length) weaker.push(`${what} from anyone, not only ${later.fromGroups.join(', ')}`);
  else if (later.fromGroups && earlier.fromGroups?.some((group) => !later.fromGroups?.includes(group))) weaker.push(`${what} from other groups`);
  for (const exclusion of exclusions) if (later[exclusion] === true && earlier[exclusion] !== true) weaker.push(`${what} without ${exclusion}`);
  return weaker;
}

/** In what ways `earlier` asks less than `later` (empty when it asks at least as much in every respect). */
export function weakerRequirements(earlier: RequireSpec, later: RequireSpec): string[] {
  const weaker: string[] = [];
  if (later.jobRunning && !earlier.jobRunning) weaker.push('jobRunning off');
  if (later.sameProject && !earlier.sameProject) weaker.push('sameProject off');
  weaker.push(...weakerApprovals('deployment approvals', earlier.deploymentApprovals, later.deploymentApprovals, ['excludeTriggerer']));
  weaker.push(...weakerApprovals('merge-request approvals', earlier.mergeRequestApprovals, later.mergeRequestApprovals, ['excludeAuthor', 'excludeCommitters', 'excludeTriggerer', 'fresh']));
  return weaker;
}

/** Why `earlier` lets a pipeline around `later`'s requirements, or undefined when it cannot. */
export function shadowingBypass(earlier: CompiledRule, later: CompiledRule): string | undefined {
  const overlap = overlappingGrants(earlier.grant, later.grant);
  if (overlap.length === 0) return undefined;
  const weaker = weakerRequirements(earlier.require, later.require);
  if (weaker.length === 0 || !conditionsCover(earlier, later)) return undefined;
  return `rule ${earlier.name} comes first, can match every pipeline this rule matches and grants ${overlap.join('; ')} with weaker requirements (${weaker.join('; ')}): this rule's requirements can be bypassed`;
}
