/** A JSON path as people write it, for messages about untrusted documents: `cases[2].approvals.deployment.jobId`. */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((text, key) => (typeof key === 'number' ? `${text}[${key}]` : `${text}${text ? '.' : ''}${String(key)}`), '');
}
