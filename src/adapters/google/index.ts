/**
 * The Google adapter's entry point. Loading google-auth-library costs start-up time and memory, so the composition
 * root should call `loadGoogleAdapter` only when a rule grants `google` (and `doctor` only when it checks Google), and
 * the CLI's job-side commands never. @google-cloud/iam-credentials (google-gax, protobufjs: about a second and 30 MB
 * more) is loaded only for `google.client: sdk`, by `loadSdkClient`.
 */
import type * as credentials from './credentials.js';
import type { IamClientKind, IamCredentialsClientFactory } from './iam-client.js';
import type * as impersonationCheck from './impersonation-check.js';
import type * as minter from './minter.js';

export type { GoogleMinter, GoogleMinterOptions } from './minter.js';
export type { IamClientKind, IamCredentialsClientFactory } from './iam-client.js';
export type { ImpersonationCheck, ImpersonationCheckOptions } from './impersonation-check.js';

export interface GoogleAdapter {
  readonly createGoogleTokenMinter: typeof minter.createGoogleTokenMinter;
  readonly checkImpersonation: typeof impersonationCheck.checkImpersonation;
  readonly applicationDefaultCredentials: typeof credentials.applicationDefaultCredentials;
  readonly brokerIdentity: typeof credentials.brokerIdentity;
  /** The factory for `google.client`: undefined (the minter's default, the direct client) or the SDK's, loaded now. */
  readonly loadIamClient: (kind: IamClientKind) => Promise<IamCredentialsClientFactory | undefined>;
}

async function loadIamClient(kind: IamClientKind): Promise<IamCredentialsClientFactory | undefined> {
  return kind === 'sdk' ? (await import('./sdk-client.js')).createSdkIamClient : undefined;
}

/** The Google adapter, with the Google client libraries loaded on first use. */
export async function loadGoogleAdapter(): Promise<GoogleAdapter> {
  const [m, check, adc] = await Promise.all([import('./minter.js'), import('./impersonation-check.js'), import('./credentials.js')]);
  return {
    createGoogleTokenMinter: m.createGoogleTokenMinter,
    checkImpersonation: check.checkImpersonation,
    applicationDefaultCredentials: adc.applicationDefaultCredentials,
    brokerIdentity: adc.brokerIdentity,
    loadIamClient,
  };
}
