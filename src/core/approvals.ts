/**
 * Pure approval rules over facts fetched from the GitLab API (issue [2/8]). Time is an argument.
 * The fact shapes are the contract between the GitLab approvals adapter and these rules.
 */
import type { GitLabPrincipal } from './claims.js';
import type { DeploymentApprovalsSpec, MergeRequestApprovalsSpec } from './policy/schema.js';

export interface ApprovalUser {
  readonly id: string;
  readonly username: string;
  readonly bot: boolean;
  readonly blocked: boolean;
}

export interface DeploymentFacts {
  readonly deploymentId: number;
  /** `deployable.id` of the deployment: must be the token's job. */
  readonly jobId: string;
  readonly environment: string;
  readonly pendingApprovalCount: number;
  readonly approvals: readonly { readonly user: ApprovalUser; readonly status: 'approved' | 'rejected'; readonly at: string }[];
}

export interface MergeRequestFacts {
  readonly iid: number;
  readonly state: string;
  readonly targetBranch: string;
  readonly mergeCommitSha: string | null;
  readonly squashCommitSha: string | null;
  readonly sha: string | null;
  readonly author: ApprovalUser;
  readonly committers: readonly { readonly username?: string; readonly email?: string; readonly name?: string }[];
  readonly approvals: readonly { readonly user: ApprovalUser; readonly at: string | undefined }[];
  /** `created_at` of the newest diff version (the last push), for freshness. */
  readonly latestVersionAt: string | undefined;
}

export interface ApprovalFacts {
  /** undefined: not fetched; null: fetched and none exists. */
  readonly deployment?: DeploymentFacts | null;
  readonly mergeRequest?: MergeRequestFacts | null;
  /** group path → ids of the approvers who are members. */
  readonly groupMembers?: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface Approver {
  readonly user: string;
  readonly at: string | undefined;
}

export interface ApprovalOutcome {
  readonly ok: boolean;
  readonly detail: string;
  readonly approvers: readonly Approver[];
}

export function evaluateDeploymentApprovals(
  _spec: DeploymentApprovalsSpec,
  _principal: GitLabPrincipal,
  _facts: ApprovalFacts,
  _now: Date,
): ApprovalOutcome {
  return { ok: false, detail: 'deployment approvals are not supported yet', approvers: [] };
}

export function evaluateMergeRequestApprovals(
  _spec: MergeRequestApprovalsSpec,
  _principal: GitLabPrincipal,
  _facts: ApprovalFacts,
  _now: Date,
): ApprovalOutcome {
  return { ok: false, detail: 'merge request approvals are not supported yet', approvers: [] };
}
