/**
 * Opening the target database with @google-cloud/spanner, and translating its gRPC errors into coded errors that
 * name what went wrong (the database, the missing permission and the principal, the token file).
 */
import { Spanner, type Database } from '@google-cloud/spanner';
import { BrokerError } from '../core/errors.js';
import { EmulatorAuthClient, TokenFileAuthClient } from './auth.js';
import type { DatabaseName } from './tables.js';

export interface ConnectOptions {
  readonly name: DatabaseName;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The access token file; required unless SPANNER_EMULATOR_HOST is set. */
  readonly tokenFile: string | undefined;
  readonly databaseRole: string | undefined;
}

export interface Connection {
  readonly spanner: Spanner;
  readonly database: Database;
  /** Who the credentials belong to, for permission errors ("the service account x", or the token file). */
  readonly principal: string;
  close(): Promise<void>;
}

/**
 * @google-cloud/spanner 8 sends queries through multiplexed sessions by default; against the emulator (google-cloud-cli
 * 528) a query on one crashes the process with "ReleaseError: Unable to release unknown resource". Regular pooled
 * sessions work on both the emulator and Spanner, so the runner turns multiplexed sessions off whenever it talks to
 * the emulator; an explicit setting in the environment wins.
 */
export function emulatorSessionEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  if (!env.SPANNER_EMULATOR_HOST) return {};
  const names = ['GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS', 'GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW', 'GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_PARTITIONED_OPS'];
  return Object.fromEntries(names.filter((name) => env[name] === undefined).map((name) => [name, 'false']));
}

/**
 * A run uses one or two sessions at a time (a transaction, the lease renewal); the default pool creates 25 as soon as
 * a database handle exists.
 */
export const SESSION_POOL = { min: 1, max: 10, incStep: 2 } as const;

/** Opens the database (no request is made until the first call). */
export function connect(options: ConnectOptions): Connection {
  // The client reads these variables itself when it builds its session factory, so they go into process.env.
  Object.assign(process.env, emulatorSessionEnv(options.env));
  const emulator = Boolean(options.env.SPANNER_EMULATOR_HOST);
  if (!emulator && !options.tokenFile) {
    throw new BrokerError('invalid_request', 'no credentials: set CLOUDSDK_AUTH_ACCESS_TOKEN_FILE (the broker exchange writes it) or --token-file, or SPANNER_EMULATOR_HOST for the emulator');
  }
  const auth = emulator ? new EmulatorAuthClient() : new TokenFileAuthClient(options.tokenFile as string);
  if (auth instanceof TokenFileAuthClient) auth.currentToken();
  const spanner = new Spanner({ projectId: options.name.project, authClient: auth, disableBuiltInMetrics: true });
  const database = spanner.instance(options.name.instance).database(options.name.database, SESSION_POOL, undefined, options.databaseRole ?? null);
  const serviceAccount = options.env.GOOGLE_SERVICE_ACCOUNT;
  const principal = emulator ? 'the emulator' : serviceAccount ? `the service account ${serviceAccount}` : `the token in ${options.tokenFile}`;
  return {
    spanner,
    database,
    principal,
    async close() {
      // The database first (its pool deletes its sessions through the client), then the client; neither failure matters
      // to a run that is over, and an unawaited close would surface as an unhandled rejection.
      await database.close().catch(() => undefined);
      await spanner.close().catch(() => undefined);
    },
  };
}

interface GrpcLikeError {
  readonly code?: unknown;
  readonly details?: unknown;
  readonly message?: unknown;
}

/** Spanner's own text for an error, without the "3 INVALID_ARGUMENT: " prefix. */
export function spannerMessage(err: unknown): string {
  const failure = err as GrpcLikeError;
  const text = typeof failure?.details === 'string' && failure.details ? failure.details : String(failure?.message ?? err);
  // google-gax appends every retried attempt ("Previous errors: [...]"); the first line says it.
  return text.replace(/^\d+ [A-Z_]+: /, '').replace(/\s*:?\s*Previous errors\s*:[^]*$/, '').slice(0, 500);
}

/** A gRPC/Spanner failure as a coded error; `what` says what was being done ("reading the history"). */
export function mapSpannerError(err: unknown, connection: Pick<Connection, 'principal'>, name: DatabaseName, what: string): BrokerError {
  if (err instanceof BrokerError) return err;
  const code = (err as GrpcLikeError)?.code;
  const message = spannerMessage(err);
  // grpc-js reports a credentials callback that threw (the token file vanished or emptied) as UNAVAILABLE.
  if (/Getting metadata from plugin failed/.test(message)) return new BrokerError('token_expired', `${what}: no usable access token: ${message}`, { cause: err });
  switch (code) {
    case 5:
      return new BrokerError('not_found', /database/i.test(message) || /instance/i.test(message) ? `${name.path}: ${message}` : `${what}: ${message}`, { cause: err });
    case 7: {
      const permission = /spanner\.[A-Za-z]+\.[A-Za-z]+/.exec(message)?.[0];
      return new BrokerError('permission_denied', `${connection.principal} ${permission ? `lacks ${permission}` : 'was refused'} on ${name.path} while ${what}: ${message}`, { cause: err });
    }
    case 16:
      return new BrokerError('token_expired', `Spanner refused ${connection.principal} while ${what} (the access token expired or was revoked): run the broker exchange again: ${message}`, { cause: err });
    case 3:
    case 6:
    case 9:
    case 11:
      return new BrokerError('invalid_request', `${what}: ${message}`, { cause: err });
    default:
      return new BrokerError('upstream_unavailable', `Spanner failed while ${what}: ${message}`, { cause: err });
  }
}
