/**
 * Broker configuration (CONTRACT.md §4): one typed schema, parsed once, frozen. Secrets come from files named here,
 * never from the config text.
 */
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';

const LOOPBACK_HOSTS = /^(?:127(?:\.\d{1,3}){3}|\[::1\]|localhost)$/;

/** https, or http only for loopback hosts (local tests and dev mode). */
export function isAllowedIssuerUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password || url.search || url.hash) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.test(url.hostname));
}

/** A Redis URL may name the ACL user, never the password: secrets come from files. */
function isRedisUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && url.password === '' && !url.search && !url.hash;
}

const issuerUrl = z.string().refine(isAllowedIssuerUrl, 'must be an https URL (http only for loopback hosts)');
const duration = z.string().refine((text) => parseDuration(text) !== undefined, 'must be a duration like 2h').transform((text) => parseDuration(text) as number);

export const gitlabIssuerSchema = z
  .strictObject({
    issuer: issuerUrl,
    audience: z.string().min(1),
    // gitbeaker appends /api/v4 to a host itself, so the API base must end in it.
    apiUrl: issuerUrl.refine((url) => /\/api\/v4\/?$/.test(url), 'must end in /api/v4').optional(),
    apiTokenFile: z.string().min(1).optional(),
    maxTokenAge: duration.default(7200),
    requestTimeout: duration.optional(),
    // Default DEFAULT_JWKS_OUTAGE_WINDOW_MS (15m), applied by the verifier.
    jwksOutageWindow: duration.optional(),
  })
  .transform((entry) => ({ ...entry, apiUrl: entry.apiUrl ?? `${entry.issuer.replace(/\/$/, '')}/api/v4` }));

/** The listener's connection bounds when the config names none (seconds, except the request count). */
export const SERVER_CONNECTION_DEFAULTS = { requestTimeout: 30, keepAliveTimeout: 5, maxRequestsPerSocket: 1000, shutdownGrace: 20 } as const;

export const configSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    publicUrl: issuerUrl,
    trustProxy: z.boolean().default(false),
    // Connection bounds of the listener (the header deadline is limits.headersTimeout).
    requestTimeout: duration.default(SERVER_CONNECTION_DEFAULTS.requestTimeout),
    keepAliveTimeout: duration.default(SERVER_CONNECTION_DEFAULTS.keepAliveTimeout),
    maxRequestsPerSocket: z.number().int().min(0).default(SERVER_CONNECTION_DEFAULTS.maxRequestsPerSocket),
    shutdownGrace: duration.default(SERVER_CONNECTION_DEFAULTS.shutdownGrace),
  }),
  gitlab: z.array(gitlabIssuerSchema).min(1),
  policy: z.strictObject({ path: z.string().min(1), watch: z.boolean().default(true) }),
  replay: z
    .discriminatedUnion('store', [
      z.strictObject({ store: z.literal('memory') }),
      z
        .strictObject({
          store: z.literal('redis'),
          url: z.string().refine(isRedisUrl, 'must be a redis:// or rediss:// URL without a password (put it in replay.passwordFile)'),
          caFile: z.string().min(1).optional(),
          passwordFile: z.string().min(1).optional(),
          waitReplicas: z.number().int().min(0).max(16).default(0),
        })
        .refine((redis) => redis.caFile === undefined || redis.url.startsWith('rediss://'), { message: 'caFile needs a rediss:// url', path: ['caFile'] }),
    ])
    .default({ store: 'memory' }),
  audit: z.strictObject({ file: z.string().min(1).optional() }).default({}),
  signing: z.strictObject({ keysFile: z.string().min(1) }),
  linkerd: z
    .strictObject({
      trustDomain: z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/).default('cluster.local'),
      controlPlaneNamespace: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/).default('linkerd'),
      issuerCertFile: z.string().min(1),
      issuerKeyFile: z.string().min(1),
      trustAnchorsFile: z.string().min(1),
    })
    .optional(),
  google: z
    .strictObject({
      // A bare origin: the IAM Credentials client takes a host and port, never a path.
      iamCredentialsUrl: issuerUrl.refine((url) => new URL(url).pathname === '/', 'must be a bare origin such as https://iamcredentials.googleapis.com').default('https://iamcredentials.googleapis.com'),
      iamUrl: issuerUrl.default('https://iam.googleapis.com'),
      // direct: one HTTPS call per mint; sdk: @google-cloud/iam-credentials' REST transport, the same call at ~7× the CPU.
      client: z.enum(['direct', 'sdk']).default('direct'),
    })
    .optional(),
  limits: z
    .strictObject({
      factTimeout: duration.default(5),
      requestsPerMinutePerProject: z.number().int().min(0).default(0),
      gitlabLookupsPerProject: z.number().int().min(0).default(60),
      gitlabLookupWindow: duration.default(60),
      failedAuthPerMinutePerAddress: z.number().int().min(0).default(60),
      headersTimeout: duration.default(10),
    })
    .default({ factTimeout: 5, requestsPerMinutePerProject: 0, gitlabLookupsPerProject: 60, gitlabLookupWindow: 60, failedAuthPerMinutePerAddress: 60, headersTimeout: 10 }),
});

export type BrokerConfig = z.output<typeof configSchema>;
export type GitLabIssuerConfig = BrokerConfig['gitlab'][number];
