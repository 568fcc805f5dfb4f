/**
 * `oidc-broker doctor` with a google section: for every service account the rules impersonate, IAM testIamPermissions
 * as the broker's own ADC (the stand-in Google's external_account file); a missing binding fails (exit 1) with the
 * gcloud command that adds it; an IAM that does not answer is unreachable (exit 3).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningJwks } from '../src/adapters/jwt/signer.js';
import { runDoctor } from '../src/cli/doctor.js';
import { API_TOKEN, startGitLab, type StandInGitLab } from './support/gitlab.js';
import { startGoogle, type StandInGoogle } from './support/google.js';

const BOUND = 'spanner-migrator@acme-prod.iam.gserviceaccount.com';
const UNBOUND = 'spanner-reader@acme-prod.iam.gserviceaccount.com';
const HOP = 'hop@acme-shared.iam.gserviceaccount.com';
const ADMIN = 'https://www.googleapis.com/auth/spanner.admin';

let gitlab: StandInGitLab;
let google: StandInGoogle;
let dir: string;

function policy(accounts: ReadonlyArray<{ sa: string; delegates?: string[] }>): string {
  const rules = accounts.map(({ sa, delegates }, i) => `  - name: rule-${i}\n    when: { project_id: "${20 + i}" }\n    grant:\n      google: { serviceAccount: ${sa}, scopes: [${ADMIN}]${delegates ? `, delegates: [${delegates.join(', ')}]` : ''} }\n`);
  return `version: 1\nrules:\n${rules.join('')}`;
}

async function doctor(policyText: string, iamUrl = google.url) {
  await writeFile(join(dir, 'policy', 'p.yaml'), policyText);
  const path = join(dir, 'broker.yaml');
  await writeFile(path, [
    'server: { publicUrl: https://broker.test }',
    `gitlab:\n  - { issuer: "${gitlab.issuer}", audience: https://broker.test, apiTokenFile: token }`,
    'policy: { path: policy }',
    'signing: { keysFile: keys.json }',
    `google: { iamCredentialsUrl: ${google.url}, iamUrl: ${iamUrl} }`,
  ].join('\n'));
  return runDoctor(path);
}

before(async () => {
  gitlab = await startGitLab();
  google = await startGoogle();
  for (const account of [BOUND, UNBOUND, HOP]) google.addServiceAccount(account);
  google.grantTokenCreator(BOUND, google.brokerServiceAccount);
  google.grantTokenCreator(HOP, google.brokerServiceAccount);
  process.env.GOOGLE_APPLICATION_CREDENTIALS = google.credentialsFile;
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-doctor-google-'));
  await mkdir(join(dir, 'policy'));
  await writeFile(join(dir, 'token'), API_TOKEN);
  await writeFile(join(dir, 'keys.json'), JSON.stringify(await generateSigningJwks()));
});
after(async () => {
  await gitlab.close();
  await google.close();
  await rm(dir, { recursive: true, force: true });
});

describe('doctor: Google impersonation', () => {
  it('passes (exit 0) when the broker may impersonate every account, checking the first delegate of a chain', async () => {
    const asked = google.calls.testIamPermissions;
    const { rows, exitCode } = await doctor(policy([{ sa: BOUND }, { sa: UNBOUND, delegates: [HOP] }]));
    assert.equal(exitCode, 0, JSON.stringify(rows));
    assert.ok(rows.some(([status, check]) => status === 'ok' && check === `google ${BOUND}`), JSON.stringify(rows));
    assert.ok(rows.some(([status, check]) => status === 'ok' && check === `google ${HOP}`), JSON.stringify(rows));
    assert.equal(google.calls.testIamPermissions - asked, 2);
  });

  it('fails (exit 1) on a missing binding and prints the gcloud command that adds it', async () => {
    const { rows, exitCode } = await doctor(policy([{ sa: BOUND }, { sa: UNBOUND }]));
    assert.equal(exitCode, 1, JSON.stringify(rows));
    const row = rows.find(([, check]) => check === `google ${UNBOUND}`);
    assert.equal(row?.[0], 'fail');
    assert.ok(row?.[2].includes(`gcloud iam service-accounts add-iam-policy-binding ${UNBOUND} --member=serviceAccount:${google.brokerServiceAccount} --role=roles/iam.serviceAccountTokenCreator`), row?.[2]);
    assert.match(row?.[2] ?? '', /rules rule-1/);
  });

  it('reports IAM unreachable (exit 3) when it does not answer', async () => {
    const { rows, exitCode } = await doctor(policy([{ sa: BOUND }]), 'http://127.0.0.1:9');
    assert.equal(exitCode, 3, JSON.stringify(rows));
    assert.ok(rows.some(([status, check]) => status === 'unreachable' && check === `google ${BOUND}`));
  });
});
