/**
 * The Google adapter's entry point. Loading @google-cloud/iam-credentials (google-gax, gRPC, protobufjs) costs about a
 * second of start-up and 30 MB, so the composition root should call `loadGoogleAdapter` only when a rule grants
 * `google` (and `doctor` only when it checks Google), and the CLI's job-side commands never.
 */
import type * as credentials from './credentials.js';
import type * as impersonationCheck from './impersonation-check.js';
import type * as minter from './minter.js';

export type { GoogleMinter, GoogleMinterOptions } from './minter.js';
export type { ImpersonationCheck, ImpersonationCheckOptions } from './impersonation-check.js';

export interface GoogleAdapter {
  readonly createGoogleTokenMinter: typeof minter.createGoogleTokenMinter;
  readonly checkImpersonation: typeof impersonationCheck.checkImpersonation;
  readonly applicationDefaultCredentials: typeof credentials.applicationDefaultCredentials;
  readonly brokerIdentity: typeof credentials.brokerIdentity;
}

/** The Google adapter, with the Google client libraries loaded on first use. */
export async function loadGoogleAdapter(): Promise<GoogleAdapter> {
  const [m, check, adc] = await Promise.all([import('./minter.js'), import('./impersonation-check.js'), import('./credentials.js')]);
  return {
    createGoogleTokenMinter: m.createGoogleTokenMinter,
    checkImpersonation: check.checkImpersonation,
    applicationDefaultCredentials: adc.applicationDefaultCredentials,
    brokerIdentity: adc.brokerIdentity,
  };
}
