/**
 * Splitting a migration file into the statements Spanner receives. Spanner takes one statement per DDL entry and
 * rejects comments inside them, so comments are dropped here and `;` only ends a statement outside strings, quoted
 * identifiers and comments (GoogleSQL: '…' "…" '''…''' """…""" with r/b prefixes, `…`, --, #, /* … *\/).
 */
import { BrokerError } from '../errors.js';

export type MigrationKind = 'ddl' | 'dml' | 'partitioned-dml';

const KINDS: readonly MigrationKind[] = ['ddl', 'dml', 'partitioned-dml'];
const DIRECTIVE = /^--\s*oidc-broker:\s*(\S+)\s*$/;

/** The kind a file declares on its first line (`-- oidc-broker: dml`); DDL when it declares none. */
export function migrationKind(file: string, text: string): MigrationKind {
  const firstLine = text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0]?.trim() ?? '';
  const match = DIRECTIVE.exec(firstLine);
  if (!match) return 'ddl';
  const kind = KINDS.find((candidate) => candidate === match[1]);
  if (!kind) throw new BrokerError('invalid_request', `${file}: unknown kind "${match[1]}" on the first line (use ${KINDS.join(', ')})`);
  return kind;
}

/** Where the quoted run starting at `start` ends (index after its closing quote). */
function endOfQuoted(text: string, start: number, file: string): number {
  const quote = text[start] as string;
  const triple = quote !== '`' && text.startsWith(quote.repeat(3), start);
  const closing = triple ? quote.repeat(3) : quote;
  let index = start + closing.length;
  while (index < text.length) {
    const char = text[index];
    if (char === '\\') {
      index += 2;
      continue;
    }
    if (!triple && (char === '\n' || char === '\r') && quote !== '`') break;
    if (text.startsWith(closing, index)) return index + closing.length;
    index += 1;
  }
  const line = text.slice(0, start).split('\n').length;
  throw new BrokerError('invalid_request', `${file}: unterminated ${quote === '`' ? 'quoted identifier' : 'string'} starting on line ${line}`);
}

/** Where the comment starting at `start` ends, or undefined when `start` does not open a comment. */
function endOfComment(text: string, start: number, file: string): number | undefined {
  if (text.startsWith('--', start) || text[start] === '#') {
    const newline = text.indexOf('\n', start);
    return newline === -1 ? text.length : newline;
  }
  if (text.startsWith('/*', start)) {
    const close = text.indexOf('*/', start + 2);
    if (close === -1) throw new BrokerError('invalid_request', `${file}: unterminated /* comment on line ${text.slice(0, start).split('\n').length}`);
    return close + 2;
  }
  return undefined;
}

/**
 * The statements of a file, comments removed, trimmed, without the terminating `;`.
 * @example splitStatements('f.sql', "INSERT INTO t (s) VALUES ('a;b'); -- done") // ["INSERT INTO t (s) VALUES ('a;b')"]
 */
export function splitStatements(file: string, text: string): string[] {
  const statements: string[] = [];
  let current = '';
  let index = 0;
  const flush = (): void => {
    const statement = current.replace(/\s+$/, '').replace(/^\s+/, '');
    if (statement) statements.push(statement);
    current = '';
  };
  while (index < text.length) {
    const char = text[index] as string;
    const commentEnd = endOfComment(text, index, file);
    if (commentEnd !== undefined) {
      current += ' ';
      index = commentEnd;
    } else if (char === "'" || char === '"' || char === '`') {
      const end = endOfQuoted(text, index, file);
      current += text.slice(index, end);
      index = end;
    } else if (char === ';') {
      flush();
      index += 1;
    } else {
      current += char;
      index += 1;
    }
  }
  flush();
  return statements;
}

const DDL_START = /^(CREATE|ALTER|DROP|GRANT|REVOKE|RENAME|ANALYZE)\b/i;
const DML_START = /^(INSERT|UPDATE|DELETE|WITH)\b/i;

/** Refuses a statement that belongs to the other kind, so a missing directive fails before anything runs. */
export function checkStatementKinds(file: string, kind: MigrationKind, statements: readonly string[]): void {
  if (statements.length === 0) throw new BrokerError('invalid_request', `${file}: no statements`);
  statements.forEach((statement, position) => {
    const where = `${file}, statement ${position + 1}`;
    if (kind === 'ddl' && DML_START.test(statement)) {
      throw new BrokerError('invalid_request', `${where} is DML in a DDL file: start the file with "-- oidc-broker: dml" (or partitioned-dml)`);
    }
    if (kind !== 'ddl' && DDL_START.test(statement)) {
      throw new BrokerError('invalid_request', `${where} is DDL in a ${kind} file: put schema changes in their own file`);
    }
  });
}
