/** CLI exit codes (CONTRACT.md §5) and plain-text tables. A configuration error is a usage error (2), not an outage. */
export const EXIT = { ok: 0, denied: 1, usage: 2, config: 2, upstream: 3 } as const;

/** Longer table cells are cut, to keep tables readable in a CI log. */
export const TABLE_CELL_WIDTH = 70;

/** A plain-text table, cells trimmed to keep it readable in a CI log. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cell = (value: string): string =>
    (value.length > TABLE_CELL_WIDTH ? `${value.slice(0, TABLE_CELL_WIDTH - 1)}…` : value).replace(/\s+/g, ' ');
  const all = [headers, ...rows].map((row) => row.map(cell));
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  const line = (row: readonly string[]): string => row.map((value, column) => value.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return [line(all[0] ?? []), widths.map((width) => '-'.repeat(width)).join('  '), ...all.slice(1).map(line)].join('\n');
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
