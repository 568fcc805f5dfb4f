/**
 * One Redis connection shared by the replay store and the rate limiter (node-redis, `@redis/client`).
 *
 * Fail closed and fast: while the connection is down every command is refused at once (no offline queue), a command
 * that gets no answer is abandoned after `commandTimeoutMs`, and the client keeps reconnecting in the background, so
 * the broker recovers without a restart when Redis is back.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as RedisLibrary from '@redis/client';
import { BrokerError } from '../../core/errors.js';

type RedisClient = ReturnType<typeof newClient>;

function newClient(library: typeof RedisLibrary, settings: ReturnType<typeof clientOptions>) {
  return library.createClient(settings);
}

export interface RedisConnectionOptions {
  /** `redis://[user[:password]@]host[:port][/db]` or `rediss://…` for TLS. */
  readonly url: string;
  /** PEM file with the CA that signed the server's certificate (`rediss://` only); Node's CA store otherwise. */
  readonly caFile?: string;
  /** A file holding the password (AUTH / ACL user), so it need not sit in the URL. */
  readonly passwordFile?: string;
  /** A command without an answer after this long fails (default 1,000 ms). */
  readonly commandTimeoutMs?: number;
  /** Called when the connection goes down or comes back; never with a password. */
  readonly onStateChange?: (state: 'up' | 'down', detail: string) => void;
}

export interface RedisConnection {
  /** Runs an EVALSHA of `script`, loading it with EVAL on NOSCRIPT (after a Redis restart or failover). */
  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  /** `SET key value NX PXAT at`: true when set, false when the key exists. */
  setIfAbsent(key: string, value: string, expiresAtMs: number): Promise<boolean>;
  /** `WAIT replicas timeout`: how many replicas acknowledged this connection's writes so far (bounded by the timeout). */
  waitForReplicas(replicas: number): Promise<number>;
  /** Connected and answering PING within the command timeout. */
  ready(): Promise<boolean>;
  close(): Promise<void>;
  /** Where it connects, for logs and errors (never the password). */
  readonly target: string;
}

export interface LuaScript {
  readonly source: string;
  readonly sha1: string;
}

export function luaScript(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

function commandTimeoutMs(options: RedisConnectionOptions): number {
  return options.commandTimeoutMs ?? 1_000;
}

/** Backoff between reconnect attempts: 100 ms doubling to 2 s, with jitter so replicas do not reconnect in step. */
function reconnectDelay(retries: number): number {
  return Math.min(100 * 2 ** retries, 2_000) + Math.floor(Math.random() * 100);
}

function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return 'redis';
  }
}

/** Throws a TypeError for a configuration mistake (bad scheme, a CA file without TLS, unreadable files). */
function clientOptions(options: RedisConnectionOptions) {
  const url = new URL(options.url);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new TypeError(`redis url must start with redis:// or rediss://, not ${url.protocol}//`);
  const tls = url.protocol === 'rediss:';
  if (options.caFile !== undefined && !tls) throw new TypeError('a Redis CA file needs a rediss:// url');
  // Credentials are passed apart from the URL, so a password file can complete a URL that names only the user.
  const username = url.username === '' ? undefined : decodeURIComponent(url.username);
  const password = options.passwordFile === undefined ? (url.password === '' ? undefined : decodeURIComponent(url.password)) : readFileSync(options.passwordFile, 'utf8').trim();
  url.username = '';
  url.password = '';
  const common = { connectTimeout: 2_000, reconnectStrategy: reconnectDelay };
  return {
    url: url.href,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    socket: tls ? { ...common, tls: true as const, ...(options.caFile === undefined ? {} : { ca: readFileSync(options.caFile, 'utf8') }) } : { ...common, tls: false as const },
    disableOfflineQueue: true,
    maintNotifications: 'disabled' as const,
    commandOptions: { timeout: commandTimeoutMs(options) },
  };
}

/**
 * Connects in the background: the returned connection refuses commands (as `not_ready`) until Redis answers, and
 * `ready()` says so, rather than holding up start-up on a Redis that is down.
 */
export function createRedisConnection(options: RedisConnectionOptions): RedisConnection {
  const target = describeTarget(options.url);
  const settings = clientOptions(options); // configuration mistakes throw here, synchronously, before anything starts
  let client: RedisClient | undefined;
  let closed = false;
  let up = false;
  let lastError = '';
  // Loaded on first use: the client library costs a CLI command that never talks to Redis a noticeable start-up time.
  void import('@redis/client').then(
    (library) => {
      if (closed) return;
      const created = newClient(library, settings);
      client = created;
      // node-redis emits 'error' on every failed reconnect; report transitions only, so a long outage is one log line.
      created.on('error', (err: Error) => {
        lastError = err.message;
        if (up) {
          up = false;
          options.onStateChange?.('down', err.message);
        }
      });
      created.on('ready', () => {
        if (!up) {
          up = true;
          options.onStateChange?.('up', target);
        }
      });
      created.connect().catch((err: unknown) => {
        // Only when the client was closed while connecting; a refused or failed connection keeps retrying.
        lastError = err instanceof Error ? err.message : String(err);
      });
    },
    (err: unknown) => {
      lastError = `the Redis client library did not load: ${String(err)}`;
    },
  );

  const unavailable = (err: unknown): never => {
    throw new BrokerError('not_ready', `Redis (${target}) is unavailable`, { cause: err });
  };
  const guard = async <T>(command: (client: RedisClient) => Promise<T>): Promise<T> => {
    if (!client?.isReady) return unavailable(new Error(`not connected${lastError ? `: ${lastError}` : ''}`));
    try {
      return await command(client);
    } catch (err) {
      return unavailable(err);
    }
  };

  return {
    target,
    evalScript(script, keys, args) {
      return guard(async (client) => {
        const options = { keys: [...keys], arguments: [...args] };
        try {
          return await client.evalSha(script.sha1, options);
        } catch (err) {
          if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
          return await client.eval(script.source, options);
        }
      });
    },
    setIfAbsent(key, value, expiresAtMs) {
      return guard(async (client) => (await client.set(key, value, { condition: 'NX', expiration: { type: 'PXAT', value: expiresAtMs } })) === 'OK');
    },
    waitForReplicas(replicas) {
      // Half the command timeout, so WAIT answers (with the count so far) before the command itself is abandoned.
      return guard((client) => client.wait(replicas, Math.max(1, Math.floor(commandTimeoutMs(options) / 2))));
    },
    async ready() {
      if (!client?.isReady) return false;
      try {
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      closed = true;
      if (client?.isOpen) client.destroy();
    },
  };
}
