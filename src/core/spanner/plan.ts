/**
 * The migration plan, as data: which files are versions, which are applied, which are pending, and every reason to
 * refuse (a changed applied file, a gap, an out-of-order file, a dirty version). No I/O: the caller reads the files,
 * hashes them and reads the history table.
 */
import { BrokerError } from '../errors.js';
import { checkStatementKinds, migrationKind, splitStatements, type MigrationKind } from './sql.js';

export interface MigrationFile {
  readonly name: string;
  readonly text: string;
  /** SHA-256 of the file's bytes, hex. */
  readonly checksum: string;
}

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly file: string;
  readonly kind: MigrationKind;
  readonly statements: readonly string[];
  readonly checksum: string;
}

/** What the history table says about one version (the latest attempt that still counts). */
export interface AppliedVersion {
  readonly version: number;
  readonly checksum: string;
  readonly status: 'applied' | 'started' | 'failed';
  readonly file: string;
  readonly startedAt: string;
  readonly pipelineId: string;
  readonly jobId: string;
  readonly projectPath: string;
  readonly error: string;
}

export interface Plan {
  readonly migrations: readonly Migration[];
  readonly applied: readonly AppliedVersion[];
  readonly pending: readonly Migration[];
  readonly dirty: readonly AppliedVersion[];
}

const FILE_NAME = /^(\d+)_([^/\\]+)\.sql$/;

/** Parses every `NNNN_description.sql`; other files are ignored, a `.sql` file with another name is an error. */
export function parseMigrations(files: readonly MigrationFile[]): Migration[] {
  const migrations: Migration[] = [];
  const byVersion = new Map<number, string>();
  for (const file of files) {
    if (!file.name.endsWith('.sql')) continue;
    const match = FILE_NAME.exec(file.name);
    if (!match) throw new BrokerError('invalid_request', `${file.name}: migration files are named NNNN_description.sql`);
    const version = Number(match[1]);
    if (!Number.isSafeInteger(version) || version < 1) throw new BrokerError('invalid_request', `${file.name}: the version must be a positive integer`);
    const other = byVersion.get(version);
    if (other) throw new BrokerError('invalid_request', `${file.name} and ${other} share version ${version}`);
    byVersion.set(version, file.name);
    const kind = migrationKind(file.name, file.text);
    const statements = splitStatements(file.name, file.text);
    checkStatementKinds(file.name, kind, statements);
    migrations.push({ version, description: (match[2] ?? '').replace(/_/g, ' '), file: file.name, kind, statements, checksum: file.checksum });
  }
  return migrations.sort((a, b) => a.version - b.version);
}

function checkContiguous(migrations: readonly Migration[]): void {
  for (let index = 1; index < migrations.length; index += 1) {
    const previous = migrations[index - 1] as Migration;
    const current = migrations[index] as Migration;
    if (current.version !== previous.version + 1) {
      throw new BrokerError('migration_conflict', `gap in versions: ${current.file} follows ${previous.file}; number the files without gaps or pass --allow-out-of-order`);
    }
  }
}

/** The resolution commands a dirty-state message names. */
export function dirtyAdvice(version: number): string {
  return `resolve it with "oidc-broker spanner resolve ${version} --rolled-back" (same --database) once no part of it remains applied `
    + `(the next migrate runs it again), or "oidc-broker spanner resolve ${version} --applied" once it is fully applied by hand`;
}

/** Compares the files with the history and refuses anything that would apply a schema nobody reviewed in that order. */
export function planMigrations(migrations: readonly Migration[], history: readonly AppliedVersion[], options: { allowOutOfOrder: boolean }): Plan {
  if (!options.allowOutOfOrder) checkContiguous(migrations);
  const files = new Map(migrations.map((migration) => [migration.version, migration]));
  const applied = history.filter((row) => row.status === 'applied');
  const dirty = history.filter((row) => row.status !== 'applied');
  for (const row of applied) {
    const file = files.get(row.version);
    if (!file) throw new BrokerError('migration_conflict', `version ${row.version} (${row.file}) is applied but its file is missing from the directory`);
    if (file.checksum !== row.checksum) {
      throw new BrokerError('migration_conflict', `${file.file} changed after it was applied (checksum ${row.checksum.slice(0, 12)}… recorded, ${file.checksum.slice(0, 12)}… now): add a new migration instead`);
    }
  }
  const appliedVersions = new Set(applied.map((row) => row.version));
  const pending = migrations.filter((migration) => !appliedVersions.has(migration.version));
  const highestApplied = Math.max(0, ...appliedVersions);
  const late = pending.find((migration) => migration.version < highestApplied);
  if (late && !options.allowOutOfOrder) {
    throw new BrokerError('migration_conflict', `${late.file} is older than the applied version ${highestApplied}: renumber it or pass --allow-out-of-order`);
  }
  return { migrations, applied, pending, dirty };
}

/** The error that stops a run while a version is dirty. */
export function dirtyError(row: AppliedVersion): BrokerError {
  const state = row.status === 'started' ? 'started and never finished (the run was killed or lost its connection)' : `failed: ${row.error}`;
  return new BrokerError('migration_dirty',
    `version ${row.version} (${row.file}) is dirty: ${state}; left by pipeline ${row.pipelineId || '?'} job ${row.jobId || '?'} of ${row.projectPath || '?'} at ${row.startedAt}. ${dirtyAdvice(row.version)}`);
}
