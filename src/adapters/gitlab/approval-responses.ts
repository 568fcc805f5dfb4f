/**
 * The GitLab API v4 response shapes the GitLab client reads, as schemas: anything GitLab sends that does not fit
 * fails the lookup (upstream_unavailable) instead of being half-read. Unknown fields are ignored; GitLab adds fields.
 */
import { z } from 'zod';
import type { ApprovalUser, Committer } from '../../core/approvals.js';

const email = z.string().nullable().optional();

export const userSchema = z.object({
  id: z.number().int(),
  username: z.string().min(1),
  name: z.string().optional(),
  state: z.string(),
  /** Only on the full user entity (`GET /users/:id`); the basic entity in approvals and MRs lacks it. */
  bot: z.boolean().optional(),
  public_email: email,
  email,
});
export type ApiUser = z.output<typeof userSchema>;

/** One entry of `GET /projects/:id/deployments`. */
export const deploymentListItemSchema = z.object({
  id: z.number().int(),
  environment: z.object({ name: z.string() }).nullable().optional(),
  deployable: z.object({ id: z.number().int() }).nullable().optional(),
});

export const deploymentSchema = z.object({
  id: z.number().int(),
  environment: z.object({ name: z.string() }),
  deployable: z.object({ id: z.number().int() }).nullable(),
  // Both are absent without deployment approvals (GitLab Free): no approvals, nothing pending.
  pending_approval_count: z.number().int().min(0).optional(),
  approvals: z.array(z.object({ user: userSchema, status: z.string(), created_at: z.string() })).optional(),
});

/** One entry of `GET /projects/:id/repository/commits/:sha/merge_requests`. */
export const mergeRequestSchema = z.object({
  iid: z.number().int(),
  state: z.string(),
  merged_at: z.string().nullable().optional(),
  merge_commit_sha: z.string().nullable().optional(),
  squash_commit_sha: z.string().nullable().optional(),
  sha: z.string().nullable().optional(),
  target_branch: z.string(),
  author: userSchema,
});
export type ApiMergeRequest = z.output<typeof mergeRequestSchema>;

export const mergeRequestApprovalsSchema = z.object({
  approved_by: z.array(z.object({ user: userSchema, approved_at: z.string().nullable().optional() })),
});

/** One entry of `GET /projects/:id/merge_requests/:iid/commits`. */
export const commitSchema = z.object({
  id: z.string(),
  author_name: z.string().nullable().optional(),
  author_email: z.string().nullable().optional(),
  committer_name: z.string().nullable().optional(),
  committer_email: z.string().nullable().optional(),
});

/** One entry of `GET /projects/:id/merge_requests/:iid/versions`. */
export const versionSchema = z.object({ id: z.number().int(), created_at: z.string() });

/** `GET /projects/:id/jobs/:job_id`: only the status is read (job liveness). */
export const jobSchema = z.object({ status: z.string().min(1) });

export const memberSchema = z.object({
  id: z.number().int(),
  state: z.string(),
  access_level: z.number().int(),
  membership_state: z.string().optional(),
});

/** Project and group access-token bots and service accounts, for the basic entity that has no `bot` field. */
const BOT_USERNAME = /^(?:(?:project|group)_\d+_bot(?:_[0-9a-f]+)?|service_account_.+)$/;

function visibleEmails(user: ApiUser): string[] {
  return [user.public_email, user.email].flatMap((value) => (value ? [value.trim().toLowerCase()] : []));
}

export function toApprovalUser(user: ApiUser): ApprovalUser {
  return {
    id: String(user.id),
    username: user.username,
    ...(user.name === undefined ? {} : { name: user.name }),
    emails: visibleEmails(user),
    bot: user.bot === true || BOT_USERNAME.test(user.username),
    blocked: user.state !== 'active',
  };
}

/** Merge the full profile (`GET /users/:id`) into a user seen in an approval list; either saying bot or blocked wins. */
export function withProfile(user: ApprovalUser, profile: ApiUser | null): ApprovalUser {
  // A user the API no longer shows cannot be vouched for.
  if (profile === null) return { ...user, blocked: true };
  const full = toApprovalUser(profile);
  return {
    ...user,
    emails: [...new Set([...(user.emails ?? []), ...(full.emails ?? [])])],
    bot: user.bot || full.bot,
    blocked: user.blocked || full.blocked,
  };
}

export function toCommitters(commits: readonly z.output<typeof commitSchema>[]): Committer[] {
  const identities = new Map<string, Committer>();
  for (const commit of commits) {
    // Both the author and the committer wrote or shaped the change; either one counts as a committer.
    for (const [name, address] of [[commit.author_name, commit.author_email], [commit.committer_name, commit.committer_email]]) {
      if (!name && !address) continue;
      identities.set(`${name ?? ''}\n${address ?? ''}`, { ...(name ? { name } : {}), ...(address ? { email: address } : {}) });
    }
  }
  return [...identities.values()];
}

/** The newest diff version's time; versions are compared by time, not by list order. */
export function latestVersionTime(versions: readonly z.output<typeof versionSchema>[]): string | undefined {
  let latest: { text: string; time: number } | undefined;
  for (const version of versions) {
    const time = Date.parse(version.created_at);
    if (Number.isNaN(time)) return undefined; // an unreadable time makes freshness unknowable: fail closed upstream
    if (!latest || time > latest.time) latest = { text: version.created_at, time };
  }
  return latest?.text;
}

/** Member of the group (inherited or invited) and able to act: active, not awaiting a seat, above Minimal Access. */
export function isActiveMember(member: z.output<typeof memberSchema>): boolean {
  return member.state === 'active' && (member.membership_state ?? 'active') === 'active' && member.access_level >= 10;
}
