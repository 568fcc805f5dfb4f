/** CLI exit codes (CONTRACT.md §5) and plain-text tables. A configuration error is a usage error (2), not an outage. */
export const EXIT = { ok: 0, denied: 1, usage: 2, config: 2, upstream: 3 } as const;

/** Longer table cells wrap onto continuation lines (never cut), to keep tables readable in a CI log. */
export const TABLE_CELL_WIDTH = 70;

/** `value` as lines of at most `width` characters, broken after spaces, `/`, `,` or `@` where possible. */
export function wrapCell(value: string, width = TABLE_CELL_WIDTH): string[] {
  let rest = value.replace(/\s+/g, ' ').trim();
  const lines: string[] = [];
  while (rest.length > width) {
    const window = rest.slice(0, width + 1);
    const breakAt = Math.max(window.lastIndexOf(' '), window.lastIndexOf('/') + 1, window.lastIndexOf(',') + 1, window.lastIndexOf('@'));
    const at = breakAt > width / 3 ? breakAt : width;
    lines.push(rest.slice(0, at).trimEnd());
    rest = rest.slice(at).trimStart();
  }
  lines.push(rest);
  return lines;
}

/** A plain-text table; a long cell wraps within its column, so nothing is cut. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const wrapped = [headers, ...rows].map((row) => headers.map((_, column) => wrapCell(row[column] ?? '')));
  const widths = headers.map((_, column) => Math.max(...wrapped.map((row) => Math.max(...(row[column] ?? ['']).map((line) => line.length)))));
  const lines = (row: readonly string[][]): string[] => {
    const height = Math.max(...row.map((cell) => cell.length));
    return Array.from({ length: height }, (_, index) => row.map((cell, column) => (cell[index] ?? '').padEnd(widths[column] ?? 0)).join('  ').trimEnd());
  };
  const [head, ...body] = wrapped;
  return [...lines(head ?? []), widths.map((width) => '-'.repeat(width)).join('  '), ...body.flatMap(lines)].join('\n');
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  if (rows.length > 0) console.log(formatTable(header, rows));
}

/** The config path from --config or BROKER_CONFIG; undefined (after a usage message and exit code 2) when neither is set. */
export function configPathOrUsage(command: string, option: string | undefined): string | undefined {
  const path = option ?? process.env.BROKER_CONFIG;
  if (!path) {
    console.error(`${command} needs --config FILE or BROKER_CONFIG`);
    process.exitCode = EXIT.usage;
  }
  return path;
}
