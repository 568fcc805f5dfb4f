/**
 * The GitLab client against the stand-ins: job lookups (ids kept as strings, every answer validated, one translator
 * keeping Retry-After, pools closed on shutdown) and the bounds on what one job token can make it spend (narrowed
 * and page-capped deployment searches, a per-project lookup budget, repeated explains answered from recent facts).
 */
import { tmpdir } from 'node:os';
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEPLOYMENT_PAGES } from '../src/adapters/gitlab/approvals.js';
import { createGitLabClient, type GitLabClient, type GitLabClientOptions } from '../src/adapters/gitlab/client.js';
import { parseConfig } from '../src/config/load.js';
import { isBrokerError, type BrokerError } from '../src/core/errors.js';
import type { FactNeeds } from '../src/core/policy/evaluate.js';
import type { TrustedIssuer } from '../src/ports.js';
import { approvalData, deploymentOf, GROUPS, SCENARIO, scenarioPrincipal } from './support/approval-scenarios.js';
import { startApprovalsServer, type ApprovalsServer } from './support/approvals-server.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const DEPLOYMENT_ONLY: FactNeeds = { jobStatus: false, deploymentApprovals: true, mergeRequestApprovals: false, groups: [GROUPS.release] };
const WAIT_MS = 3_000;

const clients: GitLabClient[] = [];
after(() => Promise.all(clients.map((client) => client.close())));

function client(token: string, options: Partial<GitLabClientOptions> = {}): GitLabClient {
  const created = createGitLabClient({ token: async () => token, requestTimeoutMs: WAIT_MS, ...options });
  clients.push(created);
  return created;
}

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  const error: unknown = await promise.then(() => assert.fail('resolved'), (reason: unknown) => reason);
  assert.ok(isBrokerError(error), String(error));
  return error;
}

describe('GitLab client: job lookups', () => {
  let gitlab: StandInGitLab;
  let issuer: TrustedIssuer;
  before(async () => {
    gitlab = await startGitLab();
    issuer = { issuer: gitlab.issuer, audience: AUDIENCE, apiUrl: gitlab.apiUrl, maxTokenAgeSeconds: 7200 };
  });
  after(() => gitlab.close());
  const principal = (jobId: string) => scenarioPrincipal({ job_id: jobId });

  it('asks for the job id exactly as the token carries it, past 2^53 included', async () => {
    gitlab.setJob(SCENARIO.projectId, '9007199254740993', 'running');
    assert.equal(await client(API_TOKEN).jobStatus(issuer, principal('9007199254740993'), AbortSignal.timeout(WAIT_MS)), 'running');
  });

  it('refuses a JSON null, or a job without a status, as upstream_unavailable naming the endpoint', async () => {
    gitlab.setJob(SCENARIO.projectId, '302', 'running');
    gitlab.faults.jobs = 'null';
    try {
      const error = await failure(client(API_TOKEN).jobStatus(issuer, principal('302'), AbortSignal.timeout(WAIT_MS)));
      assert.equal(error.code, 'upstream_unavailable');
      assert.equal(error.detail, 'GitLab job lookup failed: GitLab API answered with an unexpected document');
      assert.match(String((error.cause as Error).message), /projects\/:id\/jobs\/:job_id: shape/);
    } finally {
      gitlab.faults.jobs = undefined;
    }
  });

  it('keeps the status and Retry-After of a refusal through the one translator', async () => {
    gitlab.faults.jobs = 429;
    try {
      const error = await failure(client(API_TOKEN).jobStatus(issuer, principal('302'), AbortSignal.timeout(WAIT_MS)));
      assert.equal(error.code, 'upstream_unavailable');
      assert.equal(error.detail, 'GitLab job lookup failed: GitLab API answered 429');
      assert.equal(error.retryAfter, 7);
    } finally {
      gitlab.faults.jobs = undefined;
    }
  });

  it('stops when the request signal fires, whatever the request timeout', async () => {
    gitlab.faults.jobsDelayMs = 5_000;
    try {
      const started = performance.now();
      const error = await failure(client(API_TOKEN, { requestTimeoutMs: 30_000 }).jobStatus(issuer, principal('302'), AbortSignal.timeout(100)));
      assert.match(error.detail, /timed out/);
      assert.ok(performance.now() - started < 2_000);
    } finally {
      gitlab.faults.jobsDelayMs = 0;
    }
  });

  it('bounds each call by the issuer\'s own request timeout', async () => {
    gitlab.faults.jobsDelayMs = 5_000;
    try {
      const started = performance.now();
      const own = client(API_TOKEN, { requestTimeoutMs: 30_000, issuerRequestTimeoutMs: new Map([[issuer.issuer, 200]]) });
      const error = await failure(own.jobStatus(issuer, principal('302'), AbortSignal.timeout(30_000)));
      assert.match(error.detail, /timed out/);
      assert.ok(performance.now() - started < 2_000);
    } finally {
      gitlab.faults.jobsDelayMs = 0;
    }
  });

  it('closes its connections on close(), after which calls fail as unreachable', async () => {
    gitlab.setJob(SCENARIO.projectId, '302', 'running');
    const closing = createGitLabClient({ token: async () => API_TOKEN, requestTimeoutMs: WAIT_MS });
    assert.equal(await closing.jobStatus(issuer, principal('302'), AbortSignal.timeout(WAIT_MS)), 'running');
    await closing.close();
    const error = await failure(closing.jobStatus(issuer, principal('302'), AbortSignal.timeout(WAIT_MS)));
    assert.equal(error.detail, 'GitLab job lookup failed: GitLab API unreachable');
  });
});

describe('GitLab client: what one token can make it spend', () => {
  const iatMinusSlack = new Date((scenarioPrincipal().iat - 600) * 1000).toISOString();
  const deploymentCalls = (server: ApprovalsServer, from: number): string[] =>
    server.api.calls.slice(from).filter((call) => call.startsWith('GET /projects/20/deployments?'));

  it('narrows the deployment search by environment, status and update time, as GitLab documents them', async () => {
    // 4,999 finished deployments of the environment before the token was issued, then the job's.
    const old = Array.from({ length: 4_999 }, (_, n) =>
      deploymentOf({ id: 10_000 + n, status: 'success', updated_at: '2023-01-01T00:00:00.000Z', finished_at: '2023-01-01T00:00:00.000Z', deployable: { ...deploymentOf().deployable, id: 50_000 + n } }));
    const server = await startApprovalsServer(approvalData({ deployments: [...old, deploymentOf({ id: 900 })] }));
    try {
      const facts = await client(SCENARIO.token).approvals(server.issuer, scenarioPrincipal(), DEPLOYMENT_ONLY, AbortSignal.timeout(WAIT_MS));
      assert.equal(facts.deployment?.deploymentId, 900);
      const query = new URLSearchParams({
        environment: SCENARIO.environment, order_by: 'updated_at', page: '1', per_page: '100', sort: 'desc', status: 'running', updated_after: iatMinusSlack,
      });
      assert.deepEqual(deploymentCalls(server, 0), [`GET /projects/20/deployments?${query.toString()}`]);
    } finally {
      await server.close();
    }
  });

  it(`looks at no more than ${DEPLOYMENT_PAGES} pages of deployments, then reports none`, async () => {
    const others = Array.from({ length: 5_000 }, (_, n) => deploymentOf({ id: 10_000 + n, deployable: { ...deploymentOf().deployable, id: 50_000 + n } }));
    const server = await startApprovalsServer(approvalData({ deployments: others }));
    try {
      const facts = await client(SCENARIO.token).approvals(server.issuer, scenarioPrincipal(), DEPLOYMENT_ONLY, AbortSignal.timeout(WAIT_MS));
      assert.equal(facts.deployment, null);
      assert.equal(deploymentCalls(server, 0).length, DEPLOYMENT_PAGES);
      assert.equal(server.api.calls.length, DEPLOYMENT_PAGES, 'nothing else was looked up');
    } finally {
      await server.close();
    }
  });

  it('stand-in check: GitLab refuses an update-time filter without the matching sort', async () => {
    const server = await startApprovalsServer(approvalData({}));
    try {
      const response = await fetch(`${server.issuer.apiUrl}/projects/20/deployments?updated_after=${iatMinusSlack}&order_by=id`, { headers: { 'private-token': SCENARIO.token } });
      assert.equal(response.status, 400);
      assert.match(((await response.json()) as { message: string }).message, /`updated_at` filter requires `updated_at` sort/);
    } finally {
      await server.close();
    }
  });

  it('spends a per-project budget of approval lookups, refusing the rest with rate_limited and no call', async () => {
    const server = await startApprovalsServer(approvalData({ deployments: [deploymentOf()] }));
    try {
      let now = 1_000_000;
      const budgeted = client(SCENARIO.token, { lookupBudget: { perProject: 2, windowMs: 60_000 }, clock: () => now });
      const lookup = (projectId: string) => budgeted.approvals(server.issuer, scenarioPrincipal({ project_id: projectId }), DEPLOYMENT_ONLY, AbortSignal.timeout(WAIT_MS));
      await lookup('20');
      await lookup('20');
      const calls = server.api.calls.length;
      const refused = await failure(lookup('20'));
      assert.equal(refused.code, 'rate_limited');
      assert.equal(refused.retryAfter, 60);
      assert.equal(server.api.calls.length, calls, 'a refused lookup makes no call');
      await lookup('21'); // another project has its own budget
      now += 60_000;
      assert.equal((await lookup('20')).deployment?.deploymentId, 900, 'the next window has a fresh budget');
    } finally {
      await server.close();
    }
  });
});

describe('config: the lookup budget', () => {
  const config = (limits: string) => parseConfig(`
server: { publicUrl: https://broker.example.com }
gitlab: [{ issuer: https://gitlab.example.com, audience: https://broker.example.com }]
policy: { path: policy }
signing: { keysFile: keys.json }
${limits}`, tmpdir());

  it('is on by default: 60 approval lookups per project a minute', () => {
    assert.deepEqual([config('').limits.gitlabLookupsPerProject, config('').limits.gitlabLookupWindow], [60, 60]);
  });

  it('takes a count and a window, and 0 turns it off', () => {
    const limits = config('limits: { gitlabLookupsPerProject: 0, gitlabLookupWindow: 5m }').limits;
    assert.deepEqual([limits.gitlabLookupsPerProject, limits.gitlabLookupWindow], [0, 300]);
    assert.throws(() => config('limits: { gitlabLookupsPerProject: -1 }'), /gitlabLookupsPerProject/);
  });
});

describe('explain: repeated asks of one token', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());
  const jobLookups = () => h.gitlab.hitCount('/api/v4/projects/:n/jobs');

  it('answers repeated explains of one token from its recent facts, but every exchange looks again', async () => {
    const token = await h.gitlab.token(AUDIENCE);
    const before = jobLookups();
    for (let i = 0; i < 5; i++) {
      const explained = await h.call('/v1/explain', { token, body: { grants: { token: {} } } });
      assert.equal(explained.status, 200);
      assert.equal(explained.body.allowed, true);
    }
    assert.equal(jobLookups() - before, 1, 'five explains, one lookup');
    await h.call('/v1/explain', { token: await h.gitlab.token(AUDIENCE), body: { grants: { token: {} } } });
    assert.equal(jobLookups() - before, 2, 'another token looks up its own facts');
    assert.equal((await h.exchange(token)).status, 200);
    assert.equal(jobLookups() - before, 3, 'an exchange never mints on an explain\'s facts');
  });
});
