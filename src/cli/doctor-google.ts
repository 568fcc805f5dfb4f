/**
 * doctor's Google check: for every service account the policy's rules impersonate, may the broker mint tokens for it?
 * Asked of IAM (`testIamPermissions`, `iam.serviceAccounts.getAccessToken`) as the broker's own Application Default
 * Credentials; each missing binding is printed as the gcloud command that adds it. With delegates, the broker calls
 * the first delegate, so that is the account checked (the later hops are the delegates' own permissions, which only
 * the mint itself can test).
 */
import type { BrokerConfig } from '../config/schema.js';
import type { CompiledPolicy } from '../core/policy/compile.js';

type Status = 'ok' | 'warn' | 'fail' | 'unreachable';
export type DoctorRow = [status: Status, check: string, detail: string];

/** The accounts the broker itself must be allowed to impersonate, each with the rules that need it. */
export function impersonatedAccounts(policy: CompiledPolicy): Map<string, string[]> {
  const accounts = new Map<string, string[]>();
  for (const rule of policy.rules) {
    const google = rule.grant.google;
    if (google === undefined) continue;
    const firstHop = google.delegates?.[0] ?? google.serviceAccount;
    accounts.set(firstHop, [...(accounts.get(firstHop) ?? []), rule.name]);
  }
  return accounts;
}

export async function checkGoogle(section: NonNullable<BrokerConfig['google']>, policy: CompiledPolicy, timeoutMs: number): Promise<DoctorRow[]> {
  const accounts = impersonatedAccounts(policy);
  if (accounts.size === 0) return [['ok', 'google', 'no rule grants google']];
  const { loadGoogleAdapter } = await import('../adapters/google/index.js');
  const adapter = await loadGoogleAdapter();
  let auth;
  try {
    auth = adapter.applicationDefaultCredentials();
  } catch (err) {
    return [['fail', 'google', (err as Error).message]];
  }
  const identity = await adapter.brokerIdentity(auth);
  const rows: DoctorRow[] = [];
  for (const [serviceAccount, rules] of accounts) {
    const check = `google ${serviceAccount}`;
    try {
      const result = await adapter.checkImpersonation({ auth, serviceAccount, iamUrl: section.iamUrl, brokerIdentity: identity, signal: AbortSignal.timeout(timeoutMs) });
      rows.push(result.granted ? ['ok', check, result.detail] : ['fail', check, `${result.detail} (rules ${rules.join(', ')}); add it with: ${result.fix ?? ''}`]);
    } catch (err) {
      rows.push(['unreachable', check, (err as Error).message]);
    }
  }
  return rows;
}
