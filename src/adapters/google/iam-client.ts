/**
 * The one IAM Credentials call the google grant makes, `generateAccessToken`, as a small interface with two
 * implementations: a direct HTTPS call over an undici pool (direct-client.ts, the default) and the
 * @google-cloud/iam-credentials client over its REST transport (sdk-client.ts, `google.client: sdk`). Both throw what
 * `describeFailure` (errors.ts) classifies, so the minter translates their failures the same way.
 */
import type { GoogleAuth } from 'google-auth-library';
import { BrokerError } from '../../core/errors.js';

export interface GenerateAccessTokenRequest {
  /** The service account to impersonate (an email). */
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  /** Whole seconds, at least 1. */
  readonly lifetimeSeconds: number;
  /** The delegation chain, as emails, first hop first. */
  readonly delegates: readonly string[];
}

export interface GeneratedAccessToken {
  readonly accessToken: string;
  /** Google's expireTime, to the whole second (what both clients can represent). */
  readonly expiresAt: Date;
}

export interface IamCredentialsClient {
  /**
   * One attempt. `attemptTimeoutMs` bounds the wait for Google's answer even when the caller stops waiting; `deadline`
   * ends the call early. Throws a BrokerError for an answer without a token, anything else for a failed call.
   */
  generateAccessToken(request: GenerateAccessTokenRequest, deadline: AbortSignal, attemptTimeoutMs: number): Promise<GeneratedAccessToken>;
  close(): Promise<void>;
}

/** Makes a client for a base URL (a bare origin such as https://iamcredentials.googleapis.com) and the broker's ADC. */
export type IamCredentialsClientFactory = (baseUrl: URL, auth: GoogleAuth) => IamCredentialsClient;

/** Which implementation config `google.client` selects. */
export type IamClientKind = 'direct' | 'sdk';

/** The REST path of generateAccessToken for `serviceAccount`, as both clients send it (the email percent-encoded). */
export function generateAccessTokenPath(serviceAccount: string): string {
  return `/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}:generateAccessToken`;
}

/** A base URL the clients accept: a bare origin. */
export function checkBaseUrl(baseUrl: URL): void {
  if (baseUrl.pathname !== '/' || baseUrl.search !== '') throw new TypeError(`google.iamCredentialsUrl must be a bare origin, not ${baseUrl.href}`);
}

/** Google answered 200 without a usable token or expiry. */
export function answeredWithoutToken(): BrokerError {
  return new BrokerError('upstream_unavailable', 'Google IAM Credentials answered without an access token or expiry');
}
