/**
 * Reads policy YAML from a file or a directory of *.yaml / *.yml (file-name order) and compiles it. The server,
 * `policy check`, `policy test` and `policy explain` all load through here.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compilePolicy, PolicyError, type CompiledPolicy, type PolicyDocument } from '../../core/policy/compile.js';
import { parseStrictYaml } from './policy-yaml.js';

const MAX_POLICY_BYTES = 4 * 1024 * 1024;

export async function policyFiles(path: string): Promise<string[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  const names = (await readdir(path)).filter((name) => /\.ya?ml$/.test(name) && !name.startsWith('.')).sort();
  return names.map((name) => join(path, name));
}

/** Parse YAML strictly: duplicate keys, anchors and aliases are refused (policy-yaml.ts). */
export function parsePolicyYaml(text: string, source: string): PolicyDocument {
  try {
    return { source, data: parseStrictYaml(text) };
  } catch (err) {
    throw new PolicyError([{ source, path: '', message: `YAML: ${(err as Error).message.split('\n')[0]}` }]);
  }
}

export async function readPolicyDocuments(path: string): Promise<PolicyDocument[]> {
  let files: string[];
  try {
    files = await policyFiles(path);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new PolicyError([{ source: path, path: '', message: missing ? `file not found: ${path}` : `cannot read: ${(err as Error).message}` }]);
  }
  if (files.length === 0) throw new PolicyError([{ source: path, path: '', message: 'no *.yaml policy files' }]);
  const documents: PolicyDocument[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    if (text.length > MAX_POLICY_BYTES) throw new PolicyError([{ source: file, path: '', message: 'policy file too large' }]);
    documents.push(parsePolicyYaml(text, file));
  }
  return documents;
}

/** Load and compile; throws PolicyError listing every problem. */
export async function loadPolicy(path: string): Promise<CompiledPolicy> {
  return compilePolicy(await readPolicyDocuments(path));
}
