/**
 * Just enough Markdown reading for the docs drift tests: sections by heading, table rows, and the code span that
 * opens a row's first cell (the docs' convention for machine-checked tables: the key, flag, code or endpoint comes
 * first, in backticks).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function readDoc(relativePath: string): Promise<string> {
  return readFile(`${REPO_ROOT}${relativePath}`, 'utf8');
}

/** The text under the first heading whose title is `title` (any level), up to the next heading of that level or higher. */
export function section(markdown: string, title: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^#{1,6} /.test(line) && line.replace(/^#+ /, '').trim() === title);
  if (start < 0) throw new Error(`no heading "${title}"`);
  const level = (lines[start]?.match(/^#+/)?.[0] ?? '').length;
  const end = lines.findIndex((line, index) => index > start && new RegExp(`^#{1,${level}} `).test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** Every heading title at `level`, in order. */
export function headings(markdown: string, level: number): string[] {
  const marker = new RegExp(`^#{${level}} (.*)$`);
  return markdown.split('\n').flatMap((line) => line.match(marker)?.[1]?.trim() ?? []);
}

/** The cells of every table row (header and separator rows left out), outside fenced code blocks. */
export function tableRows(markdown: string): string[][] {
  const rows: string[][] = [];
  let fenced = false;
  let headerSeen = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced || !line.startsWith('|')) {
      headerSeen = false;
      continue;
    }
    const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split(/(?<!\\)\|/).map((cell) => cell.trim());
    if (!headerSeen) {
      headerSeen = true; // the first row of a table is its header
      continue;
    }
    if (cells.every((cell) => /^:?-+:?$/.test(cell))) continue;
    rows.push(cells);
  }
  return rows;
}

/** The first code span of a cell, or undefined. */
export function codeSpan(cell: string | undefined): string | undefined {
  return cell?.match(/`([^`]+)`/)?.[1];
}

/** First-column code spans of every table row in `markdown`. */
export function firstColumnKeys(markdown: string): string[] {
  return tableRows(markdown).flatMap((cells) => codeSpan(cells[0]) ?? []);
}

/** The contents of fenced code blocks with the given info string, in order. */
export function codeBlocks(markdown: string, info: string): string[] {
  const blocks: string[] = [];
  const pattern = new RegExp('^```' + info + '\\n([\\s\\S]*?)^```', 'gm');
  for (const match of markdown.matchAll(pattern)) blocks.push(match[1] ?? '');
  return blocks;
}

/** "missing from X: a, b" lines for a drift failure message; empty when both sides agree. */
export function driftReport(what: string, expected: Iterable<string>, documented: Iterable<string>, where: string): string[] {
  const want = new Set(expected);
  const have = new Set(documented);
  const missing = [...want].filter((item) => !have.has(item)).sort();
  const extra = [...have].filter((item) => !want.has(item)).sort();
  const report: string[] = [];
  if (missing.length > 0) report.push(`${where} does not document these ${what}: ${missing.join(', ')}`);
  if (extra.length > 0) report.push(`${where} documents ${what} that do not exist: ${extra.join(', ')}`);
  return report;
}
