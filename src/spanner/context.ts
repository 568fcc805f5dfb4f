/** Everything a spanner command needs, opened once: the connection, the store, the pipeline facts and a logger. */
import { pipelineFacts } from '../core/spanner/pipeline.js';
import { connect, mapSpannerError } from './connect.js';
import type { RunContext } from './runner.js';
import { MigrationStore } from './store.js';
import { parseDatabaseName, tableNames } from './tables.js';

export interface ContextOptions {
  readonly database: string;
  readonly historyTable: string;
  readonly databaseRole: string | undefined;
  readonly tokenFile: string | undefined;
  /** The parsed exchange output (rule, approvals, requestId), if the job has one. */
  readonly exchange: unknown;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: (line: string) => void;
}

/** Opens the context, runs `body`, and closes the connection whatever happens. */
export async function withRunContext<T>(options: ContextOptions, body: (context: RunContext) => Promise<T>): Promise<T> {
  const name = parseDatabaseName(options.database);
  const tables = tableNames(options.historyTable);
  const facts = pipelineFacts(options.env, options.exchange);
  const connection = connect({ name, env: options.env, tokenFile: options.tokenFile, databaseRole: options.databaseRole });
  const store = new MigrationStore(connection.database, tables, facts);
  try {
    return await body({ connection, name, store, facts, log: options.log, clock: () => performance.now() });
  } catch (err) {
    throw mapSpannerError(err, connection, name, 'talking to Spanner');
  } finally {
    await connection.close();
  }
}
