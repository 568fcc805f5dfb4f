/** A JSON path as people write it, for messages about untrusted documents: `cases[2].approvals.deployment.jobId`. */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((text, key) => (typeof key === 'number' ? `${text}[${key}]` : `${text}${text ? '.' : ''}${String(key)}`), '');
}

/**
 * Error text for zod's per-parse `error` option: an absent field "is missing" instead of zod's "received undefined",
 * so no message about a document says `undefined`; other issues keep zod's own text.
 * @example schema.safeParse(value, { error: missingFieldText })
 */
export function missingFieldText(issue: { readonly code?: string; readonly input?: unknown }): string | undefined {
  return issue.code === 'invalid_type' && issue.input === undefined ? 'is missing' : undefined;
}
