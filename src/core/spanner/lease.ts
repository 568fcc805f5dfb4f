/**
 * The migration lock as a lease: one row with an owner, an expiry and a token. A run takes a free or expired lease,
 * renews it while it works, and releases it at the end. Times come from Spanner (CURRENT_TIMESTAMP in the same
 * transaction) so runners with skewed clocks still agree on who holds it.
 */
export interface LeaseRow {
  readonly owner: string;
  readonly token: string;
  readonly acquiredAt: Date;
  readonly renewedAt: Date;
  readonly expiresAt: Date;
}

export type AcquireDecision =
  | { readonly action: 'take'; readonly expired: LeaseRow | undefined }
  | { readonly action: 'wait'; readonly holder: LeaseRow };

/** Take a free lease, take over an expired one, otherwise wait for the holder. */
export function decideAcquire(existing: LeaseRow | undefined, now: Date): AcquireDecision {
  if (!existing) return { action: 'take', expired: undefined };
  if (existing.expiresAt.getTime() <= now.getTime()) return { action: 'take', expired: existing };
  return { action: 'wait', holder: existing };
}

/** "group/app pipeline 12 job 34 until 2026-01-01T10:00:00.000Z (renewed 5s ago)". */
export function describeHolder(holder: LeaseRow, now: Date): string {
  const ago = Math.max(0, Math.round((now.getTime() - holder.renewedAt.getTime()) / 1000));
  return `${holder.owner} until ${holder.expiresAt.toISOString()} (acquired ${holder.acquiredAt.toISOString()}, renewed ${ago}s ago)`;
}

/** How often to renew: a third of the lease, so two renewals can fail before it lapses. */
export function renewInterval(leaseSeconds: number): number {
  return Math.max(200, Math.floor((leaseSeconds * 1000) / 3));
}
