/**
 * generateAccessToken through @google-cloud/iam-credentials over its REST transport (`google.client: sdk`). Kept as the
 * reference the direct client is tested against (test/google-differential.test.ts), and selectable; not the default:
 * gax's request path costs about seven times the CPU of a direct HTTPS call per mint (docs/performance.md).
 * Loading this module loads google-gax, protobufjs and the generated client (about a second and 30 MB).
 */
import { IAMCredentialsClient as SdkClient } from '@google-cloud/iam-credentials';
import type { GoogleAuth } from 'google-auth-library';
import { answeredWithoutToken, checkBaseUrl, type IamCredentialsClient } from './iam-client.js';

type ClientOptions = NonNullable<ConstructorParameters<typeof SdkClient>[0]>;

function expirySeconds(value: unknown): number | undefined {
  const seconds = Number((value as { seconds?: unknown } | null | undefined)?.seconds);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** The SDK client for a base URL such as https://iamcredentials.googleapis.com or http://127.0.0.1:8085. */
export function createSdkIamClient(baseUrl: URL, auth: GoogleAuth): IamCredentialsClient {
  checkBaseUrl(baseUrl);
  const https = baseUrl.protocol === 'https:';
  const options: ClientOptions & { protocol: string } = {
    // gax 5: a truthy `fallback` selects the HTTP/1.1 JSON (REST) transport instead of gRPC.
    fallback: true,
    auth,
    apiEndpoint: baseUrl.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: baseUrl.port === '' ? (https ? 443 : 80) : Number(baseUrl.port),
    // Read by gax's REST stub though its option types do not list it; plain http only for loopback stand-ins.
    protocol: https ? 'https' : 'http',
    // Retries are ours (jitter, 429 and 5xx, the request's deadline); gax's own would retry past it.
    clientConfig: { interfaces: { 'google.iam.credentials.v1.IAMCredentials': { methods: { GenerateAccessToken: { retry_codes_name: 'non_idempotent' } } } } },
  };
  const client = new SdkClient(options);
  return {
    async generateAccessToken(request) {
      // gax has no per-call cancellation on this path: an abandoned attempt runs to gaxios' own end.
      const [response] = await client.generateAccessToken({
        name: `projects/-/serviceAccounts/${request.serviceAccount}`,
        scope: [...request.scopes],
        lifetime: { seconds: request.lifetimeSeconds },
        delegates: request.delegates.map((email) => `projects/-/serviceAccounts/${email}`),
      });
      const expires = expirySeconds(response.expireTime);
      if (typeof response.accessToken !== 'string' || response.accessToken.length === 0 || expires === undefined) throw answeredWithoutToken();
      return { accessToken: response.accessToken, expiresAt: new Date(expires * 1000) };
    },
    close: () => client.close(),
  };
}
