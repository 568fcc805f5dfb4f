/**
 * The Google adapter's place: access tokens by service-account impersonation through the IAM Credentials API
 * (`generateAccessToken`), behind the GoogleTokenMinter port. This version has no Google adapter, so a `google` config
 * section is refused rather than silently ignored, and a policy that grants `google` is refused at start (the grant
 * has no minter) unless a minter is passed in (tests).
 */
import { ConfigError } from '../../config/load.js';
import type { BrokerConfig } from '../../config/schema.js';
import type { GoogleTokenMinter } from '../../ports.js';

export function createGoogleMinter(section: BrokerConfig['google']): GoogleTokenMinter | undefined {
  if (section !== undefined) throw new ConfigError('config: google: Google token minting is not available in this version; remove the google section');
  return undefined;
}
