/**
 * The stand-in GitLab answering the approval scenarios (support/approval-scenarios.ts) to the broker's API token, and a
 * broker running the approvals rule against it: the setup of every suite that gates on approvals end to end.
 */
import { fullyApproved, scenarioClaims } from './approval-scenarios.js';
import { mountApprovalsApi, type ApprovalsApiData, type ApprovalsApiHandle } from './gitlab-approvals-api.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './gitlab.js';
import { startHarness, type Harness } from './harness.js';
import { AUDIENCE } from './policies.js';

export interface ApprovalsGitLab {
  readonly gitlab: StandInGitLab;
  /** The approvals API: its calls and fault switches. */
  readonly api: ApprovalsApiHandle;
  /** What the approvals API answers from now on, to the broker's API token. */
  answer(data: ApprovalsApiData): void;
  /** An ID token of the scenario's job for the broker, with `overrides` on its claims (null removes one). */
  idToken(overrides?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export async function startApprovalsGitLab(initial: ApprovalsApiData = fullyApproved()): Promise<ApprovalsGitLab> {
  const withApiToken = (data: ApprovalsApiData): ApprovalsApiData => ({ ...data, token: API_TOKEN });
  let api: ApprovalsApiHandle | undefined;
  const gitlab = await startGitLab({ extraRoutes: (router) => (api = mountApprovalsApi(router, withApiToken(initial))) });
  if (!api) throw new TypeError('startGitLab did not mount the approvals API');
  const mounted = api;
  return {
    gitlab,
    api: mounted,
    answer: (data) => mounted.setData(withApiToken(data)),
    idToken: (overrides = {}) => gitlab.token(AUDIENCE, { ...scenarioClaims(), ci_config_ref_uri: null, ...overrides }),
    close: () => gitlab.close(),
  };
}

/** The rule the approval scenarios are written for: one release approval of the deployment, two fresh reviews of the MR. */
export const APPROVALS_POLICY = `
version: 1
rules:
  - name: payments-migrate-production
    when:
      project_id: "20"
      ref_path: refs/heads/main
      ref_protected: "true"
      environment: production
    require:
      deploymentApprovals: { min: 1, fromGroups: [payments/release] }
      mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers], fresh: true }
    grant:
      token: { audiences: [https://deploy-api.internal] }
`;

export interface ApprovalsBroker extends ApprovalsGitLab {
  /** The broker, running APPROVALS_POLICY against the stand-in GitLab. */
  readonly h: Harness;
}

export async function startApprovalsBroker(initial?: ApprovalsApiData): Promise<ApprovalsBroker> {
  const stand = await startApprovalsGitLab(initial);
  const h = await startHarness({ gitlab: stand.gitlab, policy: APPROVALS_POLICY });
  return {
    ...stand,
    h,
    close: async () => {
      await h.close();
      await stand.close();
    },
  };
}
