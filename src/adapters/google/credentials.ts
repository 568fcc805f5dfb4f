/**
 * The broker's own Google identity: Application Default Credentials (on GKE, Workload Identity; elsewhere a
 * workload-identity-federation `external_account` file; or a key file), one GoogleAuth per process so its access token
 * is fetched once and reused until it nears expiry.
 */
import { GoogleAuth } from 'google-auth-library';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** What hints say when ADC cannot name the broker's identity. */
export const UNKNOWN_IDENTITY = "the broker's identity";

export interface AdcOptions {
  /** A credentials file to use instead of ADC's own discovery (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata). */
  readonly credentialsFile?: string;
  /** The environment to check for SDK debug logging; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Throws when Google's SDK debug logging is on: it prints request and response bodies, access tokens included (the
 * broker's own from STS or the metadata server, and minted ones), so the broker refuses rather than leak.
 */
export function refuseSdkDebugLogging(env: Readonly<Record<string, string | undefined>> = process.env): void {
  if (env['GOOGLE_SDK_NODE_LOGGING']) {
    throw new Error('GOOGLE_SDK_NODE_LOGGING is set: Google SDK debug logs would contain access tokens; unset it to run the broker');
  }
}

/**
 * Application Default Credentials scoped for IAM calls. A file named by GOOGLE_APPLICATION_CREDENTIALS is read as a
 * key file rather than through ADC's discovery: discovery also looks up a project ID, which for an `external_account`
 * file means a Cloud Resource Manager call the broker's identity may not be allowed (and the broker needs no project:
 * IAM Credentials names service accounts as `projects/-/…`).
 */
export function applicationDefaultCredentials(options: AdcOptions = {}): GoogleAuth {
  const env = options.env ?? process.env;
  refuseSdkDebugLogging(env);
  const file = options.credentialsFile ?? (env['GOOGLE_APPLICATION_CREDENTIALS'] || undefined);
  return new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE], ...(file === undefined ? {} : { keyFilename: file }) });
}

/**
 * Who the broker is to Google, for an operator hint: a key file's client_email, the service account an
 * external_account file impersonates, the metadata server's default account, or a stand-in phrase when ADC cannot say
 * (a federated principal without impersonation) or does not answer within `timeoutMs`.
 */
export async function brokerIdentity(auth: GoogleAuth, timeoutMs = 1000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, undefined);
  });
  try {
    const credentials = await Promise.race([auth.getCredentials().catch(() => undefined), late]);
    const email = credentials?.client_email;
    return typeof email === 'string' && email.length > 0 ? email : UNKNOWN_IDENTITY;
  } finally {
    clearTimeout(timer);
  }
}
