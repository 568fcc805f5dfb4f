/**
 * Writes docs/grants.md from the grant registry (`npm run schemas`): one section per kind with its policy and request
 * fields, hard cap, config section and CLI flag. A test fails when the file drifts from the registry.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { GRANT_KINDS, GRANTS } from '../src/core/grants.js';
import { formatDuration } from '../src/core/duration.js';

export const GRANT_DOCS_PATH = fileURLToPath(new URL('../../docs/grants.md', import.meta.url));

interface JsonSchemaObject {
  readonly properties?: Record<string, { type?: string; default?: unknown; items?: { type?: string }; description?: string }>;
  readonly required?: readonly string[];
}

function fieldRows(schema: z.ZodType): string[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaObject;
  const required = new Set(json.required ?? []);
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const type = property.type === 'array' ? `list of ${property.items?.type ?? 'values'}` : (property.type ?? 'value');
    const presence = required.has(name) ? 'required' : property.default !== undefined ? `default \`${String(property.default)}\`` : 'optional';
    return `| \`${name}\` | ${type} | ${presence} |`;
  });
}

function table(schema: z.ZodType): string {
  const rows = fieldRows(schema);
  return rows.length === 0 ? '(no fields)' : ['| field | type | |', '|---|---|---|', ...rows].join('\n');
}

export function renderGrantDocs(): string {
  const sections = GRANT_KINDS.map((kind) => {
    const grant = GRANTS[kind];
    const flag = grant.cli.argument ? `--grant ${kind}[=${grant.cli.argument}]` : `--grant ${kind}`;
    return [
      `## \`${kind}\`: ${grant.title}`,
      '',
      grant.description,
      '',
      `- Hard cap: ${formatDuration(grant.hardCapSeconds)}, whatever the rule says; never past the ID token's \`exp\`.`,
      `- Minted by the adapter configured in the broker config's \`${grant.configSection}\` section; a policy that grants \`${kind}\` without it is refused at start and by \`doctor\`.`,
      `- CLI: \`oidc-broker exchange ${flag}\`${grant.cli.needsKeyPair ? ' (the key pair is made in the job; only the CSR is sent)' : ''}.`,
      '',
      `Policy (\`grant.${kind}\` of a rule):`,
      '',
      table(grant.policySchema),
      '',
      `Request (\`grants.${kind}\` of the exchange and explain body):`,
      '',
      table(grant.requestSchema),
    ].join('\n');
  });
  return `# Grant kinds\n\n<!-- Generated from src/core/grants/ by \`npm run schemas\`; do not edit by hand. -->\n\n${sections.join('\n\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(GRANT_DOCS_PATH, renderGrantDocs());
  console.log(`wrote ${GRANT_DOCS_PATH}`);
}
