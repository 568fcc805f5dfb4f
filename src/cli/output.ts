/** CLI exit codes (CONTRACT.md §5) and plain-text tables. */
export const EXIT = { ok: 0, denied: 1, usage: 2, upstream: 3 } as const;

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  if (rows.length > 0) console.log(formatTable(header, rows));
}
