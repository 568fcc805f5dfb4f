/**
 * Random policies and callers over small value sets (two issuers, four projects, a few refs and environments), so
 * that rules collide often: the same project under exact, list and pattern conditions, rules with and without an
 * issuer, covering and shadowing rules. For differential tests of the rule index.
 */
import { parsePrincipal, type GitLabPrincipal } from '../../src/core/claims.js';
import type { GrantRequest } from '../../src/core/grants.js';
import { compilePolicy, type CompiledPolicy } from '../../src/core/policy/compile.js';
import { defaultIdTokenClaims, withOverrides } from '../../src/dev/token-factory.js';

export const ISSUERS = ['https://gitlab-a.example', 'https://gitlab-b.example'] as const;
const IDS = ['1', '2', '3', '4'];
const PATHS = ['team/one', 'team/two', 'team/three', 'other/one'];
const REFS = ['refs/heads/main', 'refs/heads/dev', 'refs/tags/v1'];
const ENVIRONMENTS = ['production', 'staging', 'review/x'];
const AUDIENCES = ['a', 'b', 'c'];
const GROUPS = ['team/release', 'team/leads'];

export type Random = () => number;

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const chance = (random: Random, p: number): boolean => random() < p;
const some = <T>(random: Random, items: readonly T[]): T[] => {
  const chosen = items.filter(() => chance(random, 0.5));
  return chosen.length > 0 ? chosen : [pick(random, items)];
};

/** One condition over `values`: exact, a list, a glob, a wildcard-free glob or a regex. */
function matcher(random: Random, values: readonly string[], glob: string, regex: string): unknown {
  const roll = random();
  if (roll < 0.45) return pick(random, values);
  if (roll < 0.7) return some(random, values);
  if (roll < 0.8) return { glob };
  if (roll < 0.9) return { glob: pick(random, values) };
  return { regex };
}

function randomWhen(random: Random): Record<string, unknown> {
  const when: Record<string, unknown> = {};
  if (chance(random, 0.75)) when.project_id = matcher(random, IDS, '*', '[12]');
  if (chance(random, 0.5)) when.project_path = matcher(random, PATHS, 'team/*', 'team/(one|two)');
  if (chance(random, 0.4)) when.ref_path = matcher(random, REFS, 'refs/heads/*', 'refs/(heads|tags)/[a-z0-9]+');
  if (chance(random, 0.4)) when.environment = matcher(random, ENVIRONMENTS, 'review/*', 'prod[a-z]*');
  if (chance(random, 0.1)) when.iss = pick(random, ISSUERS);
  if (chance(random, 0.1)) when.namespace_path = pick(random, ['team', 'other']);
  if (Object.keys(when).length === 0) when.environment = pick(random, ENVIRONMENTS);
  return when;
}

function randomRequire(random: Random): Record<string, unknown> {
  const require: Record<string, unknown> = { jobRunning: chance(random, 0.6), sameProject: chance(random, 0.8) };
  const groups = chance(random, 0.4) ? { fromGroups: some(random, GROUPS) } : {};
  if (chance(random, 0.3)) require.deploymentApprovals = { min: pick(random, [1, 2]), ...groups };
  if (chance(random, 0.2)) require.mergeRequestApprovals = { min: pick(random, [1, 2]), fresh: chance(random, 0.5) };
  return require;
}

interface RuleData {
  readonly name: string;
  readonly issuer?: string;
  readonly when: Record<string, unknown>;
  readonly require: Record<string, unknown>;
  readonly grant: { readonly token: { readonly audiences: readonly string[] } };
}

/** A later copy of an earlier rule, sometimes narrowed by one more condition: what a copy-paste policy grows. */
function narrowedCopy(random: Random, earlier: RuleData, name: string): RuleData {
  const when = { ...earlier.when };
  if (chance(random, 0.5) && when.ref_path === undefined) when.ref_path = pick(random, REFS);
  return { ...earlier, name, when };
}

/** A policy of `size` random rules, compiled as the server compiles it. */
export function randomPolicy(random: Random, size: number): CompiledPolicy {
  const rules: RuleData[] = [];
  for (let position = 0; position < size; position += 1) {
    const name = `rule-${position}`;
    if (rules.length > 0 && chance(random, 0.1)) {
      rules.push(narrowedCopy(random, pick(random, rules), name));
      continue;
    }
    rules.push({
      name,
      ...(chance(random, 0.6) ? { issuer: pick(random, ISSUERS) } : {}),
      when: randomWhen(random),
      require: randomRequire(random),
      grant: { token: { audiences: some(random, AUDIENCES) } },
    });
  }
  return compilePolicy([{ source: 'random.yaml', data: { version: 1, rules } }]);
}

/** A caller from the same small world; sometimes a fork pipeline or a token without optional claims. */
export function randomCaller(random: Random): { principal: GitLabPrincipal; request: GrantRequest } {
  const id = pick(random, IDS);
  const path = pick(random, PATHS);
  const overrides: Record<string, unknown> = {
    iss: pick(random, ISSUERS),
    project_id: id,
    project_path: path,
    job_project_id: chance(random, 0.9) ? id : pick(random, IDS),
    namespace_path: path.split('/')[0],
    ref_path: pick(random, REFS),
    environment: chance(random, 0.8) ? pick(random, ENVIRONMENTS) : null,
    pipeline_source: pick(random, ['push', 'merge_request_event']),
  };
  const claims = withOverrides(defaultIdTokenClaims({ issuer: overrides.iss as string, audience: 'broker' }), overrides);
  const request: GrantRequest = chance(random, 0.3) ? { token: {} } : { token: { audience: pick(random, [...AUDIENCES, 'z']) } };
  return { principal: parsePrincipal(claims, 'broker'), request };
}
