/**
 * The two tables the runner keeps in the target database: the history (one row per attempt at a version, plus
 * operator events such as a forced unlock) and the lease row that serialises runs across runners.
 */
import { BrokerError } from '../core/errors.js';

export interface TableNames {
  readonly history: string;
  readonly lock: string;
}

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,122}$/;

/** `--history-table NAME` → the history table and its lock table (`NAME_lock`). */
export function tableNames(history: string): TableNames {
  if (!IDENTIFIER.test(history)) throw new BrokerError('invalid_request', `--history-table must be a Spanner identifier (letters, digits, _), got ${JSON.stringify(history)}`);
  return { history, lock: `${history}_lock` };
}

/** DDL creating both tables. */
export function createTablesDdl(tables: TableNames): string[] {
  return [
    `CREATE TABLE ${tables.history} (
      id STRING(36) NOT NULL,
      event STRING(16) NOT NULL,
      version INT64,
      description STRING(MAX),
      file STRING(MAX),
      checksum STRING(64),
      kind STRING(16),
      status STRING(16),
      statement_count INT64,
      started_at TIMESTAMP OPTIONS (allow_commit_timestamp = true),
      finished_at TIMESTAMP OPTIONS (allow_commit_timestamp = true),
      duration_ms INT64,
      error STRING(MAX),
      detail STRING(MAX),
      project_path STRING(MAX),
      project_id STRING(64),
      pipeline_id STRING(64),
      job_id STRING(64),
      commit_sha STRING(64),
      ref STRING(MAX),
      user_login STRING(MAX),
      environment STRING(MAX),
      rule STRING(MAX),
      request_id STRING(64),
      approvers ARRAY<STRING(MAX)>,
    ) PRIMARY KEY (id)`,
    `CREATE TABLE ${tables.lock} (
      name STRING(64) NOT NULL,
      owner STRING(MAX) NOT NULL,
      token STRING(36) NOT NULL,
      acquired_at TIMESTAMP NOT NULL,
      renewed_at TIMESTAMP NOT NULL,
      expires_at TIMESTAMP NOT NULL,
    ) PRIMARY KEY (name)`,
  ];
}

/** `--database` parsed. */
export interface DatabaseName {
  readonly project: string;
  readonly instance: string;
  readonly database: string;
  readonly path: string;
}

const NAME = /^projects\/([a-z][-a-z0-9.:]{0,62})\/instances\/([a-z][-a-z0-9]{1,63})\/databases\/([a-z][a-z0-9_-]{1,29})$/;

/** `projects/P/instances/I/databases/D` → its parts; anything else is a usage error. */
export function parseDatabaseName(value: string): DatabaseName {
  const match = NAME.exec(value);
  if (!match) throw new BrokerError('invalid_request', `--database must be projects/PROJECT/instances/INSTANCE/databases/DATABASE, got ${JSON.stringify(value)}`);
  return { project: match[1] as string, instance: match[2] as string, database: match[3] as string, path: value };
}

/** The lease row's key: one lock per database. */
export const LOCK_NAME = 'migrate';
