/**
 * Google access tokens for the `google` grant: IAM Credentials `generateAccessToken` for the rule's service account,
 * with the broker's Application Default Credentials, over plain HTTPS (one proxy rule, one CA bundle). The call itself
 * is an IamCredentialsClient (iam-client.ts): a direct HTTPS call by default, or @google-cloud/iam-credentials over its
 * REST transport; one per process, connections kept alive.
 *
 * Failures are mapped, never worked around: permission denied / not found → `upstream_unavailable` naming the missing
 * `roles/iam.serviceAccountTokenCreator` binding; 429, 5xx and timeouts are retried with jitter inside the deadline,
 * then `upstream_unavailable`. There is no fallback credential of any kind.
 */
import type { GoogleAuth } from 'google-auth-library';
import { BrokerError, isBrokerError } from '../../core/errors.js';
import type { GoogleMint } from '../../core/grants.js';
import type { GoogleAccessToken, GoogleTokenMinter, MintContext } from '../../ports.js';
import { applicationDefaultCredentials, brokerIdentity, refuseSdkDebugLogging } from './credentials.js';
import { createDirectIamClient } from './direct-client.js';
import { describeFailure, failureSummary, sanitizedCause, tokenCreatorChain, type GoogleFailure } from './errors.js';
import { generateAccessTokenPath, type GeneratedAccessToken, type IamCredentialsClientFactory } from './iam-client.js';
import { AttemptTimedOut, DEFAULT_RETRY_POLICY, RetriesExhausted, withRetries, type RetryPolicy } from './retry.js';

export interface GoogleMinterOptions {
  /** IAM Credentials base URL (config `google.iamCredentialsUrl`); credentials still come from ADC. */
  readonly iamCredentialsUrl: string;
  /** The broker's credentials; default: Application Default Credentials. */
  readonly auth?: GoogleAuth;
  /** Deadline of one mint, retries included, when the caller passes no signal; default 5 s. */
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** The environment to check for SDK debug logging; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** How generateAccessToken is called; default the direct HTTPS client (config `google.client`). */
  readonly client?: IamCredentialsClientFactory;
}

export interface GoogleMinter extends GoogleTokenMinter {
  /** Mint under `signal` (the request's deadline); without one, under the minter's own timeout. */
  mint(plan: GoogleMint, context: MintContext, signal?: AbortSignal): Promise<GoogleAccessToken>;
  /** Who the broker is to Google, for operator hints. */
  identity(): Promise<string>;
  close(): Promise<void>;
}

/** A BrokerError is already our verdict on an answer (e.g. a 200 without a token): asking again would not change it. */
function retryable(error: unknown): boolean {
  if (isBrokerError(error)) return false;
  return error instanceof AttemptTimedOut || describeFailure(error).kind === 'transient';
}

export function createGoogleTokenMinter(options: GoogleMinterOptions): GoogleMinter {
  refuseSdkDebugLogging(options.env);
  const baseUrl = new URL(options.iamCredentialsUrl);
  const auth = options.auth ?? applicationDefaultCredentials({ ...(options.env === undefined ? {} : { env: options.env }) });
  const client = (options.client ?? createDirectIamClient)(baseUrl, auth);
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const timeoutMs = options.timeoutMs ?? 5000;
  let identity: Promise<string> | undefined;
  const whoAmI = (): Promise<string> => (identity ??= brokerIdentity(auth));
  const origin = baseUrl.origin;

  async function translate(error: unknown, plan: GoogleMint): Promise<BrokerError> {
    if (isBrokerError(error)) return error;
    if (error instanceof RetriesExhausted) {
      const last = describeFailure(error.lastError);
      const what = isMintCall(last, plan) ? 'Google IAM Credentials' : "the broker's own Google credentials (Application Default Credentials)";
      const why = error.deadlinePassed ? 'did not succeed before the deadline' : 'kept failing';
      return new BrokerError('upstream_unavailable', `${what} ${why} (${failureSummary(last)}; ${error.attempts} attempt(s))`, { cause: sanitizedCause(last) });
    }
    const failure = describeFailure(error);
    return new BrokerError('upstream_unavailable', await explain(failure, plan), { cause: sanitizedCause(failure) });
  }

  /** Whether a failure came from the mint call itself rather than from getting the broker's own token first. */
  function isMintCall(failure: GoogleFailure, plan: GoogleMint): boolean {
    return failure.url === undefined || failure.url === `${origin}${generateAccessTokenPath(plan.serviceAccount)}`;
  }

  async function explain(failure: GoogleFailure, plan: GoogleMint): Promise<string> {
    const summary = failureSummary(failure);
    if (!isMintCall(failure, plan)) {
      return `the broker could not obtain its own Google credentials (Application Default Credentials): ${summary} from ${new URL(failure.url ?? origin).host}`;
    }
    switch (failure.kind) {
      case 'denied':
        // The binding first: callers and audit records keep only the first 240 characters of a detail.
        return `Google refused to mint a token: the broker needs ${tokenCreatorChain(await whoAmI(), plan.delegates, plan.serviceAccount)} (${summary})`;
      case 'not_found':
        return `Google found no service account ${plan.serviceAccount}${plan.delegates.length > 0 ? ' (or one of its delegates)' : ''} (${summary}): check the address in the rule, and that the broker has ${tokenCreatorChain(await whoAmI(), plan.delegates, plan.serviceAccount)}`;
      case 'unauthenticated':
        return `Google did not accept the broker's own credentials (${await whoAmI()}; ${summary}): check Application Default Credentials`;
      case 'invalid':
        return `Google IAM Credentials refused the request (${summary}): ${failure.message}`;
      case 'transient':
      case 'unknown':
        return `Google IAM Credentials call failed (${summary})`;
    }
  }

  return {
    identity: whoAmI,
    async mint(plan, _context, signal) {
      // A zero Duration would mean "the default hour" to Google: never ask for it.
      if (plan.lifetimeSeconds < 1) throw new BrokerError('token_expired', 'the ID token expires before a Google access token could be used');
      const request = { serviceAccount: plan.serviceAccount, scopes: plan.scopes, lifetimeSeconds: plan.lifetimeSeconds, delegates: plan.delegates };
      const deadline = signal ?? AbortSignal.timeout(timeoutMs);
      let token: GeneratedAccessToken;
      try {
        token = await withRetries(() => client.generateAccessToken(request, deadline, policy.attemptTimeoutMs), retryable, deadline, policy);
      } catch (err) {
        throw await translate(err, plan);
      }
      return {
        accessToken: token.accessToken, expiresAt: token.expiresAt, serviceAccount: plan.serviceAccount, scopes: [...plan.scopes],
        ...(plan.spannerDatabaseRole === undefined ? {} : { spannerDatabaseRole: plan.spannerDatabaseRole }),
      };
    },
    async close() {
      await client.close();
    },
  };
}
