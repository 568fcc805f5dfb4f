/**
 * The approval-related part of a stand-in GitLab API v4, written from GitLab's API documentation: deployments (list
 * and single, with `approvals[]` and `pending_approval_count`), merge requests of a commit, MR approvals
 * (`approved_by[]{user, approved_at}`), MR commits and diff versions, users and inherited group membership.
 * Deployment lists filtered and sorted as GitLab's DeploymentsFinder does (environment, status, updated_* and
 * finished_* with the sorts they require, else 400). Offset pagination as GitLab does it (`x-page`, `x-per-page`, `x-next-page`, `x-prev-page`, `x-total`,
 * `x-total-pages` and `Link`; totals and rel="last" omitted above 10,000 records; `per_page` capped at 100), the
 * documented 401 and 404 bodies, and fault switches. Mount it on a router that ends in a 501 catch-all.
 */
import type { NextFunction, Request, Response, Router } from 'express';

export interface StandInUser {
  readonly id: number;
  readonly username: string;
  readonly name?: string;
  /** active (default), blocked, deactivated, banned, … */
  readonly state?: string;
  /** Shown only by `GET /users/:id`, as in GitLab; the basic entity in lists has no `bot`. */
  readonly bot?: boolean;
  readonly public_email?: string | null;
}

export interface StandInDeployment {
  readonly project: string;
  readonly id: number;
  readonly iid?: number;
  readonly status: string;
  readonly sha: string;
  readonly ref: string;
  readonly environment: string;
  readonly created_at?: string;
  /** Default: when the stand-in was mounted (a running deployment turned running when its job started). */
  readonly updated_at?: string;
  /** Set only on finished deployments (success, failed, canceled). */
  readonly finished_at?: string;
  readonly deployable: { readonly id: number; readonly status: string; readonly pipeline: { readonly id: number; readonly sha: string } };
  readonly approvals?: readonly { readonly user: StandInUser; readonly status: 'approved' | 'rejected'; readonly created_at: string; readonly comment?: string }[];
  readonly pending_approval_count?: number;
}

export interface StandInCommit {
  readonly id: string;
  readonly author_name: string;
  readonly author_email: string;
  readonly committer_name?: string;
  readonly committer_email?: string;
}

export interface StandInMergeRequest {
  readonly project: string;
  readonly iid: number;
  readonly state: 'opened' | 'closed' | 'locked' | 'merged';
  readonly merged_at?: string | null;
  readonly target_branch: string;
  readonly source_branch?: string;
  /** Head commit of the source branch. */
  readonly sha: string;
  readonly merge_commit_sha: string | null;
  readonly squash_commit_sha: string | null;
  readonly author: StandInUser;
  readonly commits: readonly StandInCommit[];
  /** `approved_at` omitted models GitLab before 18.x. A revoked approval is simply not listed. */
  readonly approved_by: readonly { readonly user: StandInUser; readonly approved_at?: string }[];
  readonly versions: readonly { readonly id: number; readonly head_commit_sha: string; readonly created_at: string }[];
}

export interface StandInGroup {
  readonly id: number;
  readonly full_path: string;
  /** Direct, inherited and invited members alike: `members/all` shows them all. */
  readonly members: readonly { readonly user: StandInUser; readonly access_level: number; readonly membership_state?: string }[];
}

export interface ApprovalsApiData {
  /** Accepted as `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`. */
  readonly token: string;
  readonly users?: readonly StandInUser[];
  readonly deployments?: readonly StandInDeployment[];
  readonly mergeRequests?: readonly StandInMergeRequest[];
  readonly groups?: readonly StandInGroup[];
  /** GitLab caps per_page at 100; tests lower it to spread a few records over several pages. */
  readonly maxPerPage?: number;
  /** Pretend the record count is above 10,000 (no x-total, x-total-pages or rel="last"). */
  readonly hideTotals?: boolean;
  /** Send only the x-* headers, no Link. */
  readonly omitLink?: boolean;
}

export interface ApprovalsApiFaults {
  /** down: the socket is destroyed; 429: rate limited; html: 200 with an HTML page; 500: a server error;
   *  redirect: 302 to another host (a client that follows it sends the API token there). */
  mode: 'none' | 'down' | '429' | 'html' | '500' | 'redirect';
  /** Extra wait before a faulty (or, with mode none, every matching) answer: "slow past the deadline". */
  delayMs: number;
  /** Fixed latency of every request, for benchmarks. */
  latencyMs: number;
  /** Limit mode and delayMs to request paths matching this. */
  only?: RegExp;
}

export interface ApprovalsApiHandle {
  readonly faults: ApprovalsApiFaults;
  /** `GET <path>?<query>` of every request that reached the stand-in, in arrival order. */
  readonly calls: string[];
  /** Replace the data (the token and the switches stay on the handle). */
  setData(next: ApprovalsApiData): void;
}

const NOT_FOUND = { message: '404 Not found' };
// Unref'd: a client that gave up must not keep a test process alive until a slow answer's timer fires.
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

function basicUser(user: StandInUser): Record<string, unknown> {
  return {
    id: user.id, username: user.username, name: user.name ?? user.username, state: user.state ?? 'active', locked: false,
    avatar_url: null, web_url: `https://gitlab.example.com/${user.username}`,
  };
}

function fullUser(user: StandInUser): Record<string, unknown> {
  return { ...basicUser(user), bot: user.bot ?? false, public_email: user.public_email ?? null, created_at: '2020-01-01T00:00:00.000Z' };
}

/** Offset pagination with GitLab's headers. */
function paginate(req: Request, res: Response, items: readonly unknown[], data: ApprovalsApiData): void {
  const cap = data.maxPerPage ?? 100;
  const perPage = Math.min(Math.max(Number(req.query.per_page) || 20, 1), cap);
  const page = Math.max(Number(req.query.page) || 1, 1);
  const totalPages = Math.max(Math.ceil(items.length / perPage), 1);
  const next = page < totalPages ? page + 1 : undefined;
  const prev = page > 1 ? page - 1 : undefined;
  const link = (target: number): string => {
    const query = new URLSearchParams(req.query as Record<string, string>);
    query.set('page', String(target));
    query.set('per_page', String(perPage));
    return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl}${req.path}?${query.toString()}`;
  };
  const links = [
    ...(prev ? [`<${link(prev)}>; rel="prev"`] : []),
    ...(next ? [`<${link(next)}>; rel="next"`] : []),
    `<${link(1)}>; rel="first"`,
    ...(data.hideTotals ? [] : [`<${link(totalPages)}>; rel="last"`]),
  ];
  res.set({ 'x-page': String(page), 'x-per-page': String(perPage), 'x-next-page': next ? String(next) : '', 'x-prev-page': prev ? String(prev) : '' });
  if (!data.hideTotals) res.set({ 'x-total': String(items.length), 'x-total-pages': String(totalPages) });
  if (!data.omitLink) res.set('link', links.join(', '));
  res.json(items.slice((page - 1) * perPage, page * perPage));
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const DEPLOYMENT_ORDER = ['id', 'iid', 'created_at', 'updated_at', 'finished_at', 'ref'] as const;
const DEPLOYMENT_STATUSES = ['created', 'running', 'success', 'failed', 'canceled', 'skipped', 'blocked'];

/** A deployment's fields as the list filters and sorts see them. */
function deploymentRecord(deployment: StandInDeployment, mountedAt: string): Record<(typeof DEPLOYMENT_ORDER)[number], string | number | null> {
  return {
    id: deployment.id, iid: deployment.iid ?? deployment.id, created_at: deployment.created_at ?? '2025-01-01T00:00:00.000Z',
    updated_at: deployment.updated_at ?? mountedAt, finished_at: deployment.finished_at ?? null, ref: deployment.ref,
  };
}

/**
 * `GET /projects/:id/deployments` filters as GitLab's DeploymentsFinder applies them, with its 400s for the queries it
 * refuses as inefficient: `updated_*` needs `order_by=updated_at`, `finished_*` needs `order_by=finished_at` and
 * `status=success`, and the two kinds of filter do not mix.
 */
function filterDeployments(query: Request['query'], list: readonly StandInDeployment[], mountedAt: string): StandInDeployment[] | string {
  const text = (name: string): string | undefined => (typeof query[name] === 'string' ? query[name] : undefined);
  const orderBy = text('order_by') ?? 'id';
  if (!(DEPLOYMENT_ORDER as readonly string[]).includes(orderBy)) return 'order_by does not have a valid value';
  const status = text('status');
  if (status !== undefined && !DEPLOYMENT_STATUSES.includes(status)) return 'status does not have a valid value';
  const bounds = { updated_after: text('updated_after'), updated_before: text('updated_before'), finished_after: text('finished_after'), finished_before: text('finished_before') };
  for (const [name, value] of Object.entries(bounds)) if (value !== undefined && !ISO_8601.test(value)) return `${name} is invalid`;
  const byUpdated = bounds.updated_after !== undefined || bounds.updated_before !== undefined;
  const byFinished = bounds.finished_after !== undefined || bounds.finished_before !== undefined;
  if (byUpdated && byFinished) return 'Both `updated_at` filter and `finished_at` filter can not be specified';
  if (byUpdated && orderBy !== 'updated_at') return '`updated_at` filter requires `updated_at` sort';
  if (byFinished && orderBy !== 'finished_at') return '`finished_at` filter requires `finished_at` sort.';
  if (byFinished && status !== 'success') return '`finished_at` filter must be combined with `success` status filter.';
  const time = (value: string | number | null): number => (typeof value === 'string' ? Date.parse(value) : NaN);
  const after = (value: string | number | null, bound: string | undefined): boolean => bound === undefined || time(value) > Date.parse(bound);
  const before = (value: string | number | null, bound: string | undefined): boolean => bound === undefined || time(value) < Date.parse(bound);
  const environment = text('environment');
  const kept = list.filter((deployment) => {
    const record = deploymentRecord(deployment, mountedAt);
    return (environment === undefined || deployment.environment === environment) && (status === undefined || deployment.status === status) &&
      after(record.updated_at, bounds.updated_after) && before(record.updated_at, bounds.updated_before) &&
      after(record.finished_at, bounds.finished_after) && before(record.finished_at, bounds.finished_before);
  });
  const key = orderBy as (typeof DEPLOYMENT_ORDER)[number];
  const compare = (a: StandInDeployment, b: StandInDeployment): number => {
    const [x, y] = [deploymentRecord(a, mountedAt)[key], deploymentRecord(b, mountedAt)[key]];
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
    return order || a.id - b.id;
  };
  return [...kept].sort((a, b) => (text('sort') === 'desc' ? compare(b, a) : compare(a, b)));
}

function deploymentJson(deployment: StandInDeployment, withApprovals: boolean, mountedAt: string): Record<string, unknown> {
  const record = deploymentRecord(deployment, mountedAt);
  const base: Record<string, unknown> = {
    id: deployment.id, iid: record.iid, ref: deployment.ref, sha: deployment.sha, status: deployment.status,
    created_at: record.created_at, updated_at: record.updated_at, finished_at: record.finished_at,
    user: null, environment: { id: 1, name: deployment.environment, external_url: null },
    deployable: { id: deployment.deployable.id, status: deployment.deployable.status, name: 'deploy', stage: 'deploy', ref: deployment.ref, tag: false,
      pipeline: { id: deployment.deployable.pipeline.id, sha: deployment.deployable.pipeline.sha, ref: deployment.ref, status: 'running' } },
  };
  if (!withApprovals) return base;
  const approvals = (deployment.approvals ?? []).map((entry) => ({ user: basicUser(entry.user), status: entry.status, created_at: entry.created_at, comment: entry.comment ?? null }));
  return { ...base, pending_approval_count: deployment.pending_approval_count ?? 0, approvals, approval_summary: { rules: [] } };
}

function mergeRequestJson(mr: StandInMergeRequest): Record<string, unknown> {
  return {
    id: 1000 + mr.iid, iid: mr.iid, project_id: Number(mr.project) || 1, title: `MR ${mr.iid}`, state: mr.state,
    merged_at: mr.merged_at ?? null, target_branch: mr.target_branch, source_branch: mr.source_branch ?? `feature-${mr.iid}`,
    author: basicUser(mr.author), sha: mr.sha, merge_commit_sha: mr.merge_commit_sha, squash_commit_sha: mr.squash_commit_sha,
  };
}

/**
 * Mount the approval endpoints on `router` (which the caller mounts at `/api/v4`).
 * @example const api = mountApprovalsApi(router, data); api.faults.mode = '429';
 */
export function mountApprovalsApi(router: Router, initial: ApprovalsApiData): ApprovalsApiHandle {
  let data = initial;
  const mountedAt = new Date().toISOString();
  const faults: ApprovalsApiFaults = { mode: 'none', delayMs: 0, latencyMs: 0 };
  const calls: string[] = [];
  const project = (req: Request, owner: string): boolean => req.params.id === owner;
  const mergeRequest = (req: Request): StandInMergeRequest | undefined =>
    (data.mergeRequests ?? []).find((mr) => project(req, mr.project) && String(mr.iid) === req.params.iid);
  const everyUser = (): StandInUser[] => [
    ...(data.users ?? []),
    ...(data.mergeRequests ?? []).flatMap((mr) => [mr.author, ...mr.approved_by.map((entry) => entry.user)]),
    ...(data.deployments ?? []).flatMap((deployment) => (deployment.approvals ?? []).map((entry) => entry.user)),
  ];

  // Per route, not router.use: requests for other stand-in endpoints (jobs, …) pass through untouched.
  const guard = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    calls.push(`${req.method} ${req.url}`);
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    const affected = faults.only === undefined || faults.only.test(req.path);
    if (affected && faults.delayMs > 0) await sleep(faults.delayMs);
    if (affected && faults.mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (affected && faults.mode === '429') {
      res.status(429).set('retry-after', '7').type('text/plain').send('Retry later');
      return;
    }
    if (affected && faults.mode === 'html') {
      res.status(200).type('text/html').send('<!DOCTYPE html><html><body>Sign in · GitLab</body></html>');
      return;
    }
    if (affected && faults.mode === 'redirect') {
      res.redirect(302, `http://127.0.0.2:9${req.url}`);
      return;
    }
    if (affected && faults.mode === '500') {
      res.status(500).json({ message: '500 Internal Server Error' });
      return;
    }
    const bearer = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (req.get('private-token') !== data.token && bearer !== data.token) {
      res.status(401).json({ message: '401 Unauthorized' });
      return;
    }
    next();
  };
  const route = (path: string, handler: (req: Request, res: Response) => void): void => {
    router.get(path, guard, handler);
  };

  route('/projects/:id/deployments', (req, res) => {
    const list = filterDeployments(req.query, (data.deployments ?? []).filter((deployment) => project(req, deployment.project)), mountedAt);
    if (typeof list === 'string') return void res.status(400).json({ message: `400 Bad request - ${list}` });
    paginate(req, res, list.map((deployment) => deploymentJson(deployment, false, mountedAt)), data);
  });

  route('/projects/:id/deployments/:deployment_id', (req, res) => {
    const found = (data.deployments ?? []).find((deployment) => project(req, deployment.project) && String(deployment.id) === req.params.deployment_id);
    if (found) res.json(deploymentJson(found, true, mountedAt));
    else res.status(404).json(NOT_FOUND);
  });

  route('/projects/:id/repository/commits/:sha/merge_requests', (req, res) => {
    const { sha } = req.params;
    const list = (data.mergeRequests ?? []).filter((mr) => project(req, mr.project) &&
      (mr.sha === sha || mr.merge_commit_sha === sha || mr.squash_commit_sha === sha || mr.commits.some((commit) => commit.id === sha)));
    paginate(req, res, list.map(mergeRequestJson), data);
  });

  route('/projects/:id/merge_requests/:iid/approvals', (req, res) => {
    const mr = mergeRequest(req);
    if (!mr) {
      res.status(404).json(NOT_FOUND);
      return;
    }
    const approvedBy = mr.approved_by.map((entry) => ({ user: basicUser(entry.user), ...(entry.approved_at === undefined ? {} : { approved_at: entry.approved_at }) }));
    res.json({ id: 1000 + mr.iid, iid: mr.iid, project_id: Number(mr.project) || 1, state: mr.state, approved: approvedBy.length > 0, approvals_required: 0, approvals_left: 0, approved_by: approvedBy });
  });

  route('/projects/:id/merge_requests/:iid/commits', (req, res) => {
    const mr = mergeRequest(req);
    if (!mr) res.status(404).json(NOT_FOUND);
    else paginate(req, res, mr.commits.map((commit) => ({ ...commit, short_id: commit.id.slice(0, 8), title: 'change', committer_name: commit.committer_name ?? commit.author_name, committer_email: commit.committer_email ?? commit.author_email })), data);
  });

  route('/projects/:id/merge_requests/:iid/versions', (req, res) => {
    const mr = mergeRequest(req);
    if (!mr) res.status(404).json(NOT_FOUND);
    else paginate(req, res, mr.versions.map((version) => ({ ...version, base_commit_sha: 'b'.repeat(40), start_commit_sha: 'c'.repeat(40), merge_request_id: 1000 + mr.iid, state: 'collected', real_size: '1' })), data);
  });

  route('/users/:user_id', (req, res) => {
    const user = everyUser().find((candidate) => String(candidate.id) === req.params.user_id);
    if (user) res.json(fullUser(user));
    else res.status(404).json({ message: '404 User Not Found' });
  });

  route('/groups/:id/members/all/:user_id', (req, res) => {
    const group = (data.groups ?? []).find((candidate) => String(candidate.id) === req.params.id || candidate.full_path === req.params.id);
    const member = group?.members.find((candidate) => String(candidate.user.id) === req.params.user_id);
    if (!group || !member) {
      res.status(404).json(NOT_FOUND);
      return;
    }
    res.json({ ...basicUser(member.user), access_level: member.access_level, expires_at: null, membership_state: member.membership_state ?? 'active', group_saml_identity: null });
  });

  return {
    faults,
    calls,
    setData(next: ApprovalsApiData): void {
      data = next;
    },
  };
}
