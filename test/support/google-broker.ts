/**
 * A broker whose config has a `google` section pointing at the stand-in Google, and a `linkerd` section, so that one
 * request can ask for all three grant kinds. The broker's ADC is the stand-in's external_account file, found the way
 * production finds it: GOOGLE_APPLICATION_CREDENTIALS.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCaMaterial } from '../../src/adapters/ca/ephemeral.js';
import { startGoogle, type StandInGoogle } from './google.js';
import { startHarness, type Harness, type HarnessOptions } from './harness.js';

export const TARGET = 'spanner-migrator@acme-prod.iam.gserviceaccount.com';
export const DELEGATE = 'hop@acme-shared.iam.gserviceaccount.com';
export const DELEGATED_TARGET = 'spanner-reader@acme-prod.iam.gserviceaccount.com';
export const UNBOUND = 'nobody-granted@acme-prod.iam.gserviceaccount.com';
export const MISSING = 'never-created@acme-prod.iam.gserviceaccount.com';
export const SPANNER_ADMIN = 'https://www.googleapis.com/auth/spanner.admin';
export const SPANNER_DATA = 'https://www.googleapis.com/auth/spanner.data';

/** One rule per `environment` claim, so a test picks a rule by the token it signs. */
export const GOOGLE_POLICY = `
version: 1
rules:
  - name: spanner-migrate
    when: { project_id: "20", environment: production }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}, ${SPANNER_DATA}], lifetime: 15m, spannerDatabaseRole: migrator }
      linkerd: { serviceAccount: deploy-payments, namespace: ci, lifetime: 10m }
      token: { audiences: [https://deploy-api.internal] }
  - name: spanner-long
    when: { project_id: "20", environment: long }
    grant:
      google: { serviceAccount: ${TARGET}, scopes: [${SPANNER_ADMIN}], lifetime: 1h }
  - name: spanner-delegated
    when: { project_id: "20", environment: delegated }
    grant:
      google: { serviceAccount: ${DELEGATED_TARGET}, scopes: [${SPANNER_ADMIN}], delegates: [${DELEGATE}] }
  - name: spanner-unbound
    when: { project_id: "20", environment: unbound }
    grant:
      google: { serviceAccount: ${UNBOUND}, scopes: [${SPANNER_ADMIN}] }
  - name: spanner-missing
    when: { project_id: "20", environment: missing }
    grant:
      google: { serviceAccount: ${MISSING}, scopes: [${SPANNER_ADMIN}] }
`;

export interface GoogleBroker {
  readonly h: Harness;
  readonly google: StandInGoogle;
  /** Clear every queued fault. */
  resetFaults(): void;
  close(): Promise<void>;
}

export async function startGoogleBroker(options: HarnessOptions = {}): Promise<GoogleBroker> {
  const google = await startGoogle();
  for (const account of [TARGET, DELEGATE, DELEGATED_TARGET, UNBOUND]) google.addServiceAccount(account);
  google.grantTokenCreator(TARGET, google.brokerServiceAccount);
  google.grantTokenCreator(DELEGATE, google.brokerServiceAccount);
  google.grantTokenCreator(DELEGATED_TARGET, DELEGATE);
  process.env.GOOGLE_APPLICATION_CREDENTIALS = google.credentialsFile;

  const material = await generateCaMaterial({ trustDomain: 'cluster.local', controlPlaneNamespace: 'linkerd' });
  const caDir = await mkdtemp(join(tmpdir(), 'oidc-broker-ca-'));
  const files = { cert: join(caDir, 'issuer.crt'), key: join(caDir, 'issuer.key'), anchors: join(caDir, 'ca.crt') };
  await writeFile(files.cert, material.issuerCertPem);
  await writeFile(files.key, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(files.anchors, material.trustAnchorsPem);
  const h = await startHarness({
    policy: GOOGLE_POLICY,
    ...options,
    configExtra: [
      `google: { iamCredentialsUrl: ${google.url}, iamUrl: ${google.url} }`,
      `linkerd: { issuerCertFile: ${files.cert}, issuerKeyFile: ${files.key}, trustAnchorsFile: ${files.anchors} }`,
      options.configExtra ?? '',
    ].join('\n'),
  });
  return {
    h,
    google,
    resetFaults() {
      for (const queue of Object.values(google.faults)) queue.length = 0;
    },
    async close() {
      await h.close();
      await google.close();
      await rm(caDir, { recursive: true, force: true });
    },
  };
}
