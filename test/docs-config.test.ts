/**
 * docs/configuration.md agrees with the code: every key the config schema and the policy schema accept is in its
 * table (and nothing else is), documented defaults match the schema's, every claim a rule can match is listed, and
 * every environment variable the code reads is documented.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.js';
import { MATCHABLE_CLAIMS } from '../src/core/claims.js';
import { policyFileSchema } from '../src/core/policy/schema.js';
import { codeSpan, driftReport, readDoc, REPO_ROOT, section, tableRows } from './support/markdown.js';

interface JsonSchema {
  readonly type?: string;
  readonly properties?: Record<string, JsonSchema>;
  readonly items?: JsonSchema;
  readonly oneOf?: readonly JsonSchema[];
  readonly anyOf?: readonly JsonSchema[];
  readonly default?: unknown;
  readonly $ref?: string;
}

/** Dotted key paths of a JSON Schema (`a.b`, lists as `a[].b`), with the default where the schema gives a scalar one. */
function keyPaths(schema: JsonSchema, prefix = '', found = new Map<string, unknown>()): Map<string, unknown> {
  for (const variant of [...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) keyPaths(variant, prefix, found);
  if (schema.items) keyPaths(schema.items, `${prefix}[]`, found);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!found.has(path) || found.get(path) === undefined) found.set(path, child.default);
    keyPaths(child, path, found);
  }
  return found;
}

/** The table rows of a section, keyed by the code span of their first cell. */
function documentedKeys(markdown: string, heading: string): Map<string, string[]> {
  return new Map(tableRows(section(markdown, heading)).flatMap((cells) => {
    const key = codeSpan(cells[0]);
    return key ? [[key, cells] as const] : [];
  }));
}

/** Scalar schema defaults must appear, in backticks, in the row's default column (durations are checked as written). */
function defaultMismatches(schemaKeys: Map<string, unknown>, documented: Map<string, string[]>, where: string): string[] {
  return [...schemaKeys].flatMap(([key, value]) => {
    if (value === undefined || typeof value === 'object') return [];
    const cell = documented.get(key)?.[2] ?? '';
    return cell.includes(`\`${String(value)}\``) ? [] : [`${where}: ${key} defaults to ${String(value)} but the default column says "${cell}"`];
  });
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : Promise.resolve(entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []))));
  return nested.flat();
}

describe('docs/configuration.md', () => {
  let doc = '';
  before(async () => {
    doc = await readDoc('docs/configuration.md');
  });

  it('documents every broker config key, and only those, with the schema default', () => {
    const schemaKeys = keyPaths(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema);
    assert.ok(schemaKeys.has('server.publicUrl') && schemaKeys.has('gitlab[].issuer') && schemaKeys.has('replay.url'), 'the schema walk reaches nested, list and union keys');
    const documented = documentedKeys(doc, 'Every key');
    assert.deepEqual(driftReport('config keys', schemaKeys.keys(), documented.keys(), 'docs/configuration.md (### Every key)'), []);
    assert.deepEqual(defaultMismatches(schemaKeys, documented, 'docs/configuration.md (### Every key)'), []);
    for (const [key, cells] of documented) assert.ok(cells.length === 4 && (cells[3] ?? '').length > 5, `docs/configuration.md: ${key} needs a type, a default and a meaning`);
  });

  it('documents every policy key, and only those, with the schema default', () => {
    const all = keyPaths(z.toJSONSchema(policyFileSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema);
    // Claim names and matcher fields under `when` are documented in their own tables (checked below).
    const schemaKeys = new Map([...all].filter(([key]) => !key.startsWith('rules[].when.')));
    const documented = documentedKeys(doc, 'Every policy key');
    assert.deepEqual(driftReport('policy keys', schemaKeys.keys(), documented.keys(), 'docs/configuration.md (### Every policy key)'), []);
    assert.deepEqual(defaultMismatches(schemaKeys, documented, 'docs/configuration.md (### Every policy key)'), []);

    const matcherFields = new Set([...all.keys()].filter((key) => key.startsWith('rules[].when.project_id.')).map((key) => key.slice('rules[].when.project_id.'.length)));
    assert.deepEqual([...matcherFields].sort(), ['allowSlash', 'glob', 'regex'], 'the matcher fields changed: update ### Matchers');
    const matcherRows = documentedKeys(doc, 'Matchers');
    for (const field of matcherFields) assert.ok(matcherRows.has(field), `docs/configuration.md (### Matchers) does not document ${field}`);
  });

  it('lists every claim a rule can match, and only those', () => {
    const documented = documentedKeys(doc, 'Claims a rule can match (`rules[].when`)');
    assert.deepEqual(driftReport('claims', MATCHABLE_CLAIMS, documented.keys(), 'docs/configuration.md (### Claims a rule can match)'), []);
  });

  it('documents every environment variable the code reads', async () => {
    const read = new Set<string>();
    for (const file of await sourceFiles(join(REPO_ROOT, 'src'))) {
      for (const match of (await readFile(file, 'utf8')).matchAll(/process\.env\.([A-Z][A-Z0-9_]*)|process\.env\[['"]([A-Z][A-Z0-9_]*)['"]\]/g)) read.add((match[1] ?? match[2]) as string);
    }
    assert.ok(read.has('BROKER_CONFIG'), 'the scan finds process.env reads');
    read.add('BROKER_ID_TOKEN'); // read through --token-env, whose default names it
    const documented = documentedKeys(doc, 'Environment variables');
    const missing = [...read].filter((name) => !documented.has(name)).sort();
    assert.deepEqual(missing, [], `docs/configuration.md (## Environment variables) does not document: ${missing.join(', ')}`);
  });
});
