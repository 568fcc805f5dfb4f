/**
 * Policy YAML, read strictly: duplicate keys, anchors and aliases are refused, and scalars resolve by the YAML 1.2 core
 * schema (no timestamps, no `<<` merge keys, no `1_000` or `0b101` numbers), as the `yaml` package reads them.
 *
 * Why js-yaml here and `yaml` elsewhere: a many-teams policy of 10,000 rules is 2–3 MB of YAML, which `yaml` takes
 * seconds to parse and js-yaml a few hundred milliseconds (docs/performance.md, "Policy at scale"); the server loads
 * the policy at start and on every reload. A test checks that both read policy files alike.
 */
import { FAILSAFE_SCHEMA, Type, load, type LoadOptions } from 'js-yaml';

const CORE_INT = /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/;
const CORE_FLOAT = /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;

const CORE_NULL = /^(?:~|null|Null|NULL)$/;
const CORE_BOOL = /^(?:true|True|TRUE|false|False|FALSE)$/;

const coreNull = new Type('tag:yaml.org,2002:null', {
  kind: 'scalar',
  resolve: (data: string | null) => data === null || CORE_NULL.test(data),
  construct: () => null,
  predicate: (value: unknown) => value === null,
});

const coreBool = new Type('tag:yaml.org,2002:bool', {
  kind: 'scalar',
  resolve: (data: string | null) => data !== null && CORE_BOOL.test(data),
  construct: (data: string) => data.toLowerCase() === 'true',
  predicate: (value: unknown) => typeof value === 'boolean',
});

const coreInt = new Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (data: string | null) => data !== null && CORE_INT.test(data),
  construct: (data: string) => {
    if (data.startsWith('0o')) return Number.parseInt(data.slice(2), 8);
    if (data.startsWith('0x')) return Number.parseInt(data.slice(2), 16);
    return Number.parseInt(data, 10);
  },
});

const coreFloat = new Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (data: string | null) => data !== null && CORE_FLOAT.test(data),
  construct: (data: string) => {
    const lower = data.toLowerCase();
    if (lower.endsWith('.nan')) return Number.NaN;
    if (lower.endsWith('.inf')) return lower.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    return Number.parseFloat(data);
  },
});

const CORE_SCHEMA = FAILSAFE_SCHEMA.extend({ implicit: [coreNull, coreBool, coreInt, coreFloat] });

export class PolicyYamlError extends Error {
  override readonly name = 'PolicyYamlError';
}

/** Parses one YAML document; throws (PolicyYamlError or js-yaml's YAMLException) with a readable first line. */
export function parseStrictYaml(text: string): unknown {
  const options: LoadOptions = {
    schema: CORE_SCHEMA,
    // An anchor is where every alias starts: refusing anchors refuses aliases and their expansion.
    listener(event, state) {
      if (event === 'close' && (state as unknown as { anchor: string | null }).anchor !== null) throw new PolicyYamlError('anchors and aliases are not allowed');
    },
  };
  return load(text, options) ?? null;
}
