/**
 * Policy files are parsed with js-yaml for speed (policy-yaml.ts) and must read as the `yaml` package (YAML 1.2 core
 * schema) reads them, which the rest of the project and the documentation use; only stricter where it refuses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { parsePolicyYaml } from '../src/adapters/policy/load.js';
import { parseStrictYaml } from '../src/adapters/policy/policy-yaml.js';
import { PolicyError } from '../src/core/policy/compile.js';
import { manyTeamsPolicy } from '../bench/policy.js';
import { seededRandom } from './support/seeded-random.js';

const reference = (text: string): unknown => parse(text, { uniqueKeys: true, maxAliasCount: 0 });

describe('policy YAML reads as YAML 1.2 core', () => {
  const scalars = [
    '1', '0x14', '0o17', '007', '-0', '+12', '1_000', '0b101', '0x', '+0o7', '1e3', '1.5', '1.', '.5', '.inf', '-.Inf', '.NaN',
    '12345678901234567890', '2020-01-01', 'true', 'True', 'FALSE', 'yes', 'on', 'n', '~', 'null', 'NULL', '', '"20"', "'x'",
    '!!str 1', 'refs/heads/main', 'review/*', '"a: b"', '[1, "x", null]', '{ glob: "x/*" }',
  ];
  for (const scalar of scalars) {
    it(`reads a: ${scalar || '(empty)'} as the yaml package does`, () => {
      assert.deepEqual(parseStrictYaml(`a: ${scalar}\n`), reference(`a: ${scalar}\n`));
    });
  }

  it('reads generated many-teams policies and their block-style rewrites as the yaml package does', () => {
    const random = seededRandom(15_017);
    for (const size of [1, 7, 40]) {
      for (const text of manyTeamsPolicy(size).files) {
        assert.deepEqual(parseStrictYaml(text), reference(text));
        const block = stringify(reference(text), { lineWidth: Math.floor(random() * 80) + 20 });
        assert.deepEqual(parseStrictYaml(block), reference(block));
      }
    }
  });

  it('reads the merge key << as a plain key (no merging), as YAML 1.2 does', () => {
    assert.deepEqual(parseStrictYaml('<<: { b: 1 }\n'), { '<<': { b: 1 } });
  });

  const refused: Array<[what: string, text: string, message: RegExp]> = [
    ['a duplicate key', 'version: 1\nversion: 1\n', /duplicated mapping key/],
    ['an alias', 'a: &x { b: 1 }\nc: *x\n', /anchors and aliases are not allowed/],
    ['an anchor, even unused', 'a: &x 1\n', /anchors and aliases are not allowed/],
    ['an alias without an anchor', 'a: *x\n', /unidentified alias/],
    ['a binary tag', 'a: !!binary aGk=\n', /unknown tag/],
    ['two documents', 'a: 1\n---\nb: 2\n', /single document/],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what} as a PolicyError naming the file`, () => {
      assert.throws(() => parsePolicyYaml(text, 'team.yaml'), (err: unknown) => {
        assert.ok(err instanceof PolicyError);
        assert.equal(err.issues[0]?.source, 'team.yaml');
        assert.match(err.issues[0]?.message ?? '', /^YAML: /);
        assert.match(err.issues[0]?.message ?? '', message);
        return true;
      });
    });
  }
});
