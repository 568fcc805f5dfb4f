/**
 * Preflight for `doctor`: may the broker mint tokens for a service account? Asks IAM `testIamPermissions` on the
 * service account for `iam.serviceAccounts.getAccessToken` (what `roles/iam.serviceAccountTokenCreator` grants) and,
 * when it is missing, says which gcloud command adds the binding.
 */
import type { GoogleAuth } from 'google-auth-library';
import { BrokerError } from '../../core/errors.js';
import { brokerIdentity } from './credentials.js';
import { describeFailure, failureSummary, iamMember, sanitizedCause, tokenCreatorCommand } from './errors.js';

export const GET_ACCESS_TOKEN_PERMISSION = 'iam.serviceAccounts.getAccessToken';
export const DEFAULT_IAM_URL = 'https://iam.googleapis.com';

export interface ImpersonationCheck {
  readonly serviceAccount: string;
  readonly granted: boolean;
  /** One line for the operator: what was found. */
  readonly detail: string;
  /** When not granted: the gcloud command that adds the missing binding. */
  readonly fix: string | undefined;
}

export interface ImpersonationCheckOptions {
  readonly auth: GoogleAuth;
  readonly serviceAccount: string;
  /** IAM API base URL; default https://iam.googleapis.com. */
  readonly iamUrl?: string;
  /** Who the broker is to Google; default: asked of ADC. */
  readonly brokerIdentity?: string;
  readonly signal?: AbortSignal;
}

/**
 * Whether the broker holds `iam.serviceAccounts.getAccessToken` on `serviceAccount`. Throws
 * BrokerError('upstream_unavailable') when IAM cannot answer (doctor: exit 3).
 */
export async function checkImpersonation(options: ImpersonationCheckOptions): Promise<ImpersonationCheck> {
  const base = (options.iamUrl ?? DEFAULT_IAM_URL).replace(/\/+$/, '');
  const url = `${base}/v1/projects/-/serviceAccounts/${encodeURIComponent(options.serviceAccount)}:testIamPermissions`;
  let granted: unknown;
  let notFound = false;
  try {
    const response = await options.auth.request<{ permissions?: unknown }>({
      url,
      method: 'POST',
      data: { permissions: [GET_ACCESS_TOKEN_PERMISSION] },
      signal: options.signal ?? AbortSignal.timeout(10_000),
      retry: false,
    });
    granted = response.data.permissions;
  } catch (err) {
    const failure = describeFailure(err);
    if (failure.kind !== 'not_found' || failure.url !== url) {
      throw new BrokerError('upstream_unavailable', `IAM testIamPermissions on ${options.serviceAccount} failed (${failureSummary(failure)})`, { cause: sanitizedCause(failure) });
    }
    notFound = true;
  }
  const identity = options.brokerIdentity ?? (await brokerIdentity(options.auth));
  const fix = tokenCreatorCommand(options.serviceAccount, iamMember(identity));
  if (notFound) return { serviceAccount: options.serviceAccount, granted: false, detail: `service account ${options.serviceAccount} does not exist (or the broker cannot see it)`, fix };
  const ok = Array.isArray(granted) && granted.includes(GET_ACCESS_TOKEN_PERMISSION);
  return ok
    ? { serviceAccount: options.serviceAccount, granted: true, detail: `${identity} may mint tokens for ${options.serviceAccount}`, fix: undefined }
    : { serviceAccount: options.serviceAccount, granted: false, detail: `${identity} lacks roles/iam.serviceAccountTokenCreator on ${options.serviceAccount}`, fix };
}
