/**
 * The `google` config section → the google grant's minter. The Google client libraries are loaded here, and only when
 * the config has the section: a broker that mints no Google tokens never pays their start-up time and memory
 * (@google-cloud/iam-credentials only with `google.client: sdk`).
 * The broker's own credentials are Application Default Credentials (docs/google.md, "The broker's own identity").
 */
import type { BrokerConfig } from '../../config/schema.js';
import { loadGoogleAdapter, type GoogleMinter } from './index.js';

export async function createGoogleMinter(section: BrokerConfig['google']): Promise<GoogleMinter | undefined> {
  if (section === undefined) return undefined;
  const adapter = await loadGoogleAdapter();
  const client = await adapter.loadIamClient(section.client);
  return adapter.createGoogleTokenMinter({ iamCredentialsUrl: section.iamCredentialsUrl, auth: adapter.applicationDefaultCredentials(), ...(client === undefined ? {} : { client }) });
}
