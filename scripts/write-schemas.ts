/** Writes schemas/policy.schema.json from the zod definition (`npm run schemas`); a test fails when it drifts. */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { policyJsonSchema } from '../src/core/policy/schema.js';

export const POLICY_SCHEMA_PATH = fileURLToPath(new URL('../../schemas/policy.schema.json', import.meta.url));

export function renderPolicySchema(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(POLICY_SCHEMA_PATH, renderPolicySchema());
  console.log(`wrote ${POLICY_SCHEMA_PATH}`);
}
