/**
 * What users touch is `include:` in their `.gitlab-ci.yml`: these tests run consumer pipelines with gitlab-ci-local
 * (shell executor) against the real broker on loopback. The templates are published to a local bare repository at a tag
 * and included by `include: component`, `include: project` and `include: remote` (from a loopback HTTP server); the
 * jobs run this checkout's CLI and use what it minted. Each ID token is signed by the stand-in GitLab and is single-use.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { after, before, describe, it } from 'node:test';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { approvalData, mergeRequestApproved, scenarioClaims } from './support/approval-scenarios.js';
import { mountApprovalsApi, type ApprovalsApiHandle } from './support/gitlab-approvals-api.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { createCiWorkspace, TEMPLATES_PROJECT, type CiWorkspace, type PipelineRun } from './support/gitlab-ci-local.js';
import { startHarness, type Harness } from './support/harness.js';
import { AUDIENCE } from './support/policies.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TAG = '1.2.3';
const DEPLOY_AUDIENCE = 'https://deploy-api.internal';
const IDENTITY = 'deploy-payments.ci.serviceaccount.identity.linkerd.cluster.local';

const POLICY = `
version: 1
rules:
  - name: payments-deploy-production
    when:
      project_id: "20"
      ref_path: refs/heads/main
      ref_protected: "true"
      environment: production
    grant:
      token: { audiences: [${DEPLOY_AUDIENCE}], lifetime: 10m }
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 10m }
  - name: payments-release
    when:
      project_id: "20"
      ref_path: refs/heads/main
      environment: release
    require:
      mergeRequestApprovals: { min: 2, fromGroups: [payments/reviewers], fresh: true }
    grant:
      token: { audiences: [${DEPLOY_AUDIENCE}] }
`;

let gitlab: StandInGitLab;
let approvals: ApprovalsApiHandle;
let broker: Harness;
let workspace: CiWorkspace;
let remoteServer: Server;
let remoteUrl: string;

before(async () => {
  gitlab = await startGitLab({ extraRoutes: (router) => (approvals = mountApprovalsApi(router, { ...approvalData(), token: API_TOKEN })) });
  workspace = await createCiWorkspace();
  const ca = await generateCaMaterial({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' });
  const caDir = join(workspace.dir, 'linkerd-ca');
  await mkdir(caDir);
  await writeFile(join(caDir, 'issuer.crt'), ca.issuerCertPem);
  await writeFile(join(caDir, 'issuer.key'), ca.issuerKeyPem, { mode: 0o600 });
  await writeFile(join(caDir, 'ca.crt'), ca.trustAnchorsPem);
  broker = await startHarness({
    gitlab,
    policy: POLICY,
    configExtra: `linkerd: { trustDomain: cluster.local, controlPlaneNamespace: linkerd, issuerCertFile: ${caDir}/issuer.crt, issuerKeyFile: ${caDir}/issuer.key, trustAnchorsFile: ${caDir}/ca.crt }`,
  });
  await workspace.publishTemplates(TAG);
  remoteServer = createServer((req, res) => {
    if (req.url !== '/oidc-broker.gitlab-ci.yml') return void res.writeHead(404).end();
    void readFile(`${ROOT}ci-templates/oidc-broker.gitlab-ci.yml`).then((body) => res.writeHead(200, { 'content-type': 'text/plain' }).end(body));
  });
  remoteServer.listen(0, '127.0.0.1');
  await once(remoteServer, 'listening');
  remoteUrl = `http://127.0.0.1:${(remoteServer.address() as AddressInfo).port}/oidc-broker.gitlab-ci.yml`;
});

after(async () => {
  remoteServer?.close();
  await broker?.close();
  await gitlab?.close();
  await workspace?.close();
});

/** A fresh ID token of the default deploy job (payments/api, main, protected), for `environment`. */
const idToken = (overrides: Record<string, unknown> = {}) => gitlab.token(AUDIENCE, { ci_config_ref_uri: null, ...overrides });

/** Shell lines that decode the broker token's claims (the test reads them from the log). */
const USE_TOKEN = [
  'test -s "$BROKER_TOKEN_FILE"',
  'payload="$(cut -d. -f2 "$BROKER_TOKEN_FILE" | tr "_-" "/+")"',
  'while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="${payload}="; done',
  'echo "broker token claims: $(printf %s "$payload" | base64 -d)"',
];
/** Shell lines that check the linkerd certificate against the trust anchors, its identity, and its key. */
const USE_CERTIFICATE = [
  'openssl verify -CAfile "$LINKERD_CA_FILE" -untrusted "$LINKERD_TLS_CERT_FILE" "$LINKERD_TLS_CERT_FILE"',
  'openssl x509 -in "$LINKERD_TLS_CERT_FILE" -noout -ext subjectAltName',
  'test "$(openssl x509 -in "$LINKERD_TLS_CERT_FILE" -noout -pubkey)" = "$(openssl pkey -in "$LINKERD_TLS_KEY_FILE" -pubout)" && echo "key matches certificate"',
];

function assertCertificateUsed(log: string): void {
  assert.match(log, /: OK/);
  assert.match(log, new RegExp(`DNS:${IDENTITY.replaceAll('.', '\\.')}`));
  assert.match(log, /key matches certificate/);
}

const yamlList = (lines: readonly string[]) => lines.map((line) => `    - ${JSON.stringify(line)}`).join('\n');

function claimsIn(log: string): Record<string, unknown> {
  const line = /broker token claims: (\{.*\})/.exec(log)?.[1];
  assert.ok(line, `no decoded claims in the job log:\n${log}`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe('a consumer including the login component at a tag', () => {
  let run: PipelineRun;
  before(async () => {
    run = await workspace.runPipeline({
      ciYaml: `
include:
  - component: $CI_SERVER_FQDN/${TEMPLATES_PROJECT}/login@${TAG}
    inputs:
      broker_url: ${broker.url}
      audience: ${AUDIENCE}
      grants: [token, linkerd]
deploy:
  extends: .oidc-broker-login
  environment: production
  script:
${yamlList([...USE_TOKEN, ...USE_CERTIFICATE])}
deploy-staging:
  extends: .oidc-broker-login
  environment: staging
  script:
    - echo "this line runs only after an exchange"
`,
      variables: {
        BROKER_ID_TOKEN: {
          values: {
            production: await idToken(),
            staging: await idToken({ environment: 'staging', environment_protected: 'false' }),
          },
        },
      },
    });
  });

  it('runs a job that extends the hidden job and uses the minted broker token and linkerd certificate', () => {
    const job = run.job('deploy');
    assert.equal(job.status, 'PASS', job.log);
    const claims = claimsIn(job.log);
    assert.equal(claims.aud, DEPLOY_AUDIENCE);
    assert.equal(claims.iss, AUDIENCE);
    assertCertificateUsed(job.log);
  });

  it('fails the job of a denied exchange, naming the failing condition, and runs nothing after it', async () => {
    const job = run.job('deploy-staging');
    assert.equal(job.status, 'FAIL', job.log);
    assert.notEqual(run.exitCode, 0);
    assert.match(job.log, /denied\b[^\n]*policy_denied/);
    assert.match(job.log, /payments-deploy-production +environment +[^\n]*production[^\n]*staging/);
    assert.doesNotMatch(job.log, /this line runs only after an exchange\n/);
    const denials = (await broker.auditRecords()).filter((record) => record.outcome === 'denied');
    assert.ok(denials.some((record) => record.code === 'policy_denied'), JSON.stringify(denials));
  });
});

describe('the deploy-gate component', () => {
  const releasePipeline = async () => workspace.runPipeline({
    ciYaml: `
include:
  - component: $CI_SERVER_FQDN/${TEMPLATES_PROJECT}/deploy-gate@${TAG}
    inputs:
      broker_url: ${broker.url}
      audience: ${AUDIENCE}
      environment: release
release:
  stage: deploy
  environment: release
  script:
    - echo "released after the gate"
`,
    variables: { BROKER_ID_TOKEN: await idToken({ ...scenarioClaims(), environment: 'release' }) },
  });

  it('fails the pipeline with the reasons in the log while the merge request approvals are missing', async () => {
    approvals.setData({ ...approvalData(), token: API_TOKEN });
    const run = await releasePipeline();
    const gate = run.job('oidc-broker-deploy-gate');
    assert.equal(gate.status, 'FAIL', gate.log);
    assert.notEqual(run.exitCode, 0);
    assert.match(gate.log, /not allowed/);
    assert.match(gate.log, /payments-release/);
    assert.match(gate.log, /mergeRequestApprovals/);
    assert.equal(run.jobs.has('release'), false, 'the deploy stage must not run after a failed gate');
  });

  it('passes, and lets the deploy stage run, once the approvals exist', async () => {
    approvals.setData({ ...mergeRequestApproved(), token: API_TOKEN });
    const run = await releasePipeline();
    const gate = run.job('oidc-broker-deploy-gate');
    assert.equal(gate.status, 'PASS', gate.log);
    assert.match(gate.log, /allowed by rule payments-release/);
    assert.equal(run.job('release').status, 'PASS');
    assert.equal(run.exitCode, 0, run.output);
  });
});

describe('the classic templates', () => {
  const classicVariables = () => `
variables:
  OIDC_BROKER_URL: ${broker.url}
  OIDC_BROKER_AUDIENCE: ${AUDIENCE}
`;

  it('include: project at a tag: a job extending .oidc-broker-login uses the minted credentials', async () => {
    const run = await workspace.runPipeline({
      ciYaml: `
include:
  - project: ${TEMPLATES_PROJECT}
    ref: ${TAG}
    file: ci-templates/oidc-broker.gitlab-ci.yml
${classicVariables()}
deploy:
  extends: .oidc-broker-login
  stage: deploy
  environment: production
  variables:
    OIDC_BROKER_GRANTS: token linkerd
  script:
${yamlList([...USE_TOKEN, ...USE_CERTIFICATE])}
`,
      variables: { BROKER_ID_TOKEN: await idToken() },
    });
    const job = run.job('deploy');
    assert.equal(job.status, 'PASS', job.log);
    assert.equal(claimsIn(job.log).aud, DEPLOY_AUDIENCE);
    assertCertificateUsed(job.log);
  });

  it('include: remote from an HTTP server: a job extending .oidc-broker-deploy-gate passes the gate', async () => {
    const run = await workspace.runPipeline({
      ciYaml: `
include:
  - remote: ${remoteUrl}
${classicVariables()}
gate:
  extends: .oidc-broker-deploy-gate
  stage: deploy
  environment: production
`,
      variables: { BROKER_ID_TOKEN: await idToken() },
    });
    const job = run.job('gate');
    assert.equal(job.status, 'PASS', job.log);
    assert.match(job.log, /allowed by rule payments-deploy-production/);
  });
});

describe("this project's own pipeline", () => {
  it('includes its components at the commit being tested, as GitLab resolves a self-reference', async () => {
    const run = await workspace.runPipeline({
      ciYaml: await readFile(`${ROOT}.gitlab-ci.yml`, 'utf8'),
      project: TEMPLATES_PROJECT,
      withTemplates: true,
      extraArgs: ['--preview'],
    });
    assert.equal(run.exitCode, 0, run.output);
    const expanded = parse(run.output.slice(run.output.indexOf('---'))) as Record<string, Record<string, unknown>>;
    const gate = expanded['self-test-deploy-gate'];
    assert.ok(gate, run.output);
    assert.match(JSON.stringify(gate.script), /oidc-broker|broker gate/);
    assert.equal((gate.environment as { name?: string }).name, 'self-test');
    assert.deepEqual((gate.needs as Array<{ job: string }>).map((need) => need.job), ['cli-image']);
    assert.deepEqual(gate.image, { name: '$CLI_IMAGE' }, 'included by SHA, the self-test runs this commit\'s image');
    const login = expanded['self-test-login'];
    assert.ok(login);
    assert.deepEqual(login.image, { name: '$CLI_IMAGE' });
    assert.match(JSON.stringify(login.before_script), /exchange/);
    assert.deepEqual((login.id_tokens as Record<string, unknown>).BROKER_ID_TOKEN, { aud: '$OIDC_BROKER_SELF_TEST_AUDIENCE' });
  });
});
