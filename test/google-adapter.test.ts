/**
 * The Google adapter against a stand-in Google over real HTTP: the broker's ADC is a workload-identity-federation
 * external_account file (STS token exchange with an RS256 subject token, then impersonation of the broker's service
 * account), and every mint goes through the direct IAM Credentials client (google-differential.test.ts holds it to
 * @google-cloud/iam-credentials' REST transport). No SDK is mocked.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isBrokerError, type BrokerError } from '../src/core/errors.js';
import type { GoogleMint } from '../src/core/grants.js';
import { UNKNOWN_IDENTITY, applicationDefaultCredentials, brokerIdentity } from '../src/adapters/google/credentials.js';
import { checkImpersonation } from '../src/adapters/google/impersonation-check.js';
import { createGoogleTokenMinter, type GoogleMinter, type GoogleMinterOptions } from '../src/adapters/google/minter.js';
import { contextAt } from './linkerd-fixtures.js';
import { startGoogle, type StandInGoogle } from './support/google.js';

const TARGET = 'spanner-migrator@acme-prod.iam.gserviceaccount.com';
const DELEGATE = 'hop@acme-shared.iam.gserviceaccount.com';
const UNBOUND = 'nobody-granted@acme-prod.iam.gserviceaccount.com';
const SPANNER_ADMIN = 'https://www.googleapis.com/auth/spanner.admin';
const SPANNER_DATA = 'https://www.googleapis.com/auth/spanner.data';
const FAST_RETRY = { maxAttempts: 4, attemptTimeoutMs: 500, baseDelayMs: 5, capDelayMs: 20, random: () => 0.5 };

function plan(overrides: Partial<GoogleMint> = {}): GoogleMint {
  const now = new Date();
  return { kind: 'google', serviceAccount: TARGET, scopes: [SPANNER_ADMIN], delegates: [], lifetimeSeconds: 900, expiresAt: new Date(now.getTime() + 900_000), ...overrides };
}

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isBrokerError(err), `expected a BrokerError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('Google access tokens through IAM Credentials', () => {
  let google: StandInGoogle;
  const minters: GoogleMinter[] = [];
  const minter = (options: Partial<GoogleMinterOptions> = {}): GoogleMinter => {
    const created = createGoogleTokenMinter({
      iamCredentialsUrl: google.url,
      auth: applicationDefaultCredentials({ credentialsFile: google.credentialsFile }),
      retry: FAST_RETRY,
      env: {},
      ...options,
    });
    minters.push(created);
    return created;
  };
  const context = contextAt(new Date());

  before(async () => {
    google = await startGoogle();
    for (const account of [TARGET, DELEGATE, UNBOUND]) google.addServiceAccount(account);
    google.grantTokenCreator(TARGET, google.brokerServiceAccount);
    google.grantTokenCreator(DELEGATE, google.brokerServiceAccount);
    google.grantTokenCreator(TARGET, DELEGATE);
  });
  after(async () => {
    await Promise.all(minters.map((m) => m.close()));
    await google.close();
  });
  beforeEach(() => {
    for (const queue of Object.values(google.faults)) queue.length = 0;
  });

  it('asks for exactly the planned scopes and lifetime, as the broker, and returns the token Google issued', async () => {
    const m = minter();
    const before = google.generateRequests.length;
    const token = await m.mint(plan({ scopes: [SPANNER_ADMIN, SPANNER_DATA], lifetimeSeconds: 600 }), context);
    const sent = google.generateRequests.filter((call) => call.serviceAccount === TARGET).at(-1);
    assert.ok(sent && google.generateRequests.length > before);
    assert.deepEqual(sent.body.scope, [SPANNER_ADMIN, SPANNER_DATA]);
    assert.equal(sent.body.lifetime, '600s');
    assert.equal(sent.caller, `serviceAccount:${google.brokerServiceAccount}`);
    assert.ok(google.issued.has(token.accessToken), 'the token is one the stand-in issued');
    assert.equal(token.serviceAccount, TARGET);
    assert.deepEqual(token.scopes, [SPANNER_ADMIN, SPANNER_DATA]);
    const remaining = (token.expiresAt.getTime() - Date.now()) / 1000;
    assert.ok(remaining > 590 && remaining <= 601, `expires in ${remaining}s`);
  });

  it('sends delegates as projects/-/serviceAccounts/<email>, and the chain is honoured', async () => {
    const m = minter();
    await m.mint(plan({ delegates: [DELEGATE] }), context);
    const sent = google.generateRequests.filter((call) => call.serviceAccount === TARGET).at(-1);
    assert.deepEqual(sent?.body.delegates, [`projects/-/serviceAccounts/${DELEGATE}`]);
  });

  it("fetches the broker's own token once for several mints (ADC caches it)", async () => {
    const m = minter();
    const sts = google.calls.sts;
    const generate = google.calls.generateAccessToken;
    for (let i = 0; i < 3; i += 1) await m.mint(plan(), context);
    assert.equal(google.calls.sts - sts, 1, 'one STS exchange');
    assert.equal(google.calls.generateAccessToken - generate, 4, "one impersonation of the broker's account, then one call per mint");
  });

  it('names the missing roles/iam.serviceAccountTokenCreator binding when Google denies, without retrying', async () => {
    const m = minter();
    await m.mint(plan(), context); // warm ADC so the call count below is the mint's alone
    const calls = google.calls.generateAccessToken;
    const error = await failure(m.mint(plan({ serviceAccount: UNBOUND }), context));
    assert.equal(error.code, 'upstream_unavailable');
    assert.equal(error.status, 503);
    assert.match(error.detail, /HTTP 403 PERMISSION_DENIED/);
    assert.ok(error.detail.includes(`roles/iam.serviceAccountTokenCreator on ${UNBOUND} for ${google.brokerServiceAccount}`), error.detail);
    assert.equal(google.calls.generateAccessToken - calls, 1, 'a denial is not retried');
  });

  it('names every hop of a delegation chain when a delegated mint is denied', async () => {
    const error = await failure(minter().mint(plan({ serviceAccount: UNBOUND, delegates: [DELEGATE] }), context));
    assert.ok(
      error.detail.includes(`roles/iam.serviceAccountTokenCreator on ${DELEGATE} for ${google.brokerServiceAccount}, then roles/iam.serviceAccountTokenCreator on ${UNBOUND} for ${DELEGATE}`),
      error.detail,
    );
  });

  it('says the service account was not found, with the binding to check, on 404', async () => {
    const error = await failure(minter().mint(plan({ serviceAccount: 'typo@acme-prod.iam.gserviceaccount.com' }), context));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /found no service account typo@acme-prod\.iam\.gserviceaccount\.com \(HTTP 404 NOT_FOUND\)/);
    assert.match(error.detail, /roles\/iam\.serviceAccountTokenCreator on typo@/);
  });

  const statusTable: { status: number; detail: RegExp }[] = [
    { status: 401, detail: /did not accept the broker's own credentials \(oidc-broker@broker-project\.iam\.gserviceaccount\.com; HTTP 401 UNAUTHENTICATED\)/ },
    { status: 400, detail: /refused the request \(HTTP 400 INVALID_ARGUMENT\): stand-in fault 400/ },
  ];
  for (const { status, detail } of statusTable) {
    it(`maps Google's ${status} to upstream_unavailable with what to check, without retrying`, async () => {
      const m = minter();
      await m.mint(plan(), context);
      const calls = google.calls.generateAccessToken;
      google.faults.generateAccessToken.push(status);
      const error = await failure(m.mint(plan(), context));
      assert.equal(error.code, 'upstream_unavailable');
      assert.match(error.detail, detail);
      assert.equal(google.calls.generateAccessToken - calls, 1);
    });
  }

  it('refuses a lifetime Google rejects (over 1 h) with its message', async () => {
    const error = await failure(minter().mint(plan({ lifetimeSeconds: 7200 }), context));
    assert.match(error.detail, /HTTP 400 INVALID_ARGUMENT\): The lifetime must be at most 3600s/);
  });

  it('retries 429, 5xx and a proxy error page, then succeeds', async () => {
    const m = minter();
    await m.mint(plan(), context);
    const calls = google.calls.generateAccessToken;
    google.faults.generateAccessToken.push(429, 503, 'html');
    const token = await m.mint(plan(), context);
    assert.ok(google.issued.has(token.accessToken));
    assert.equal(google.calls.generateAccessToken - calls, 4);
  });

  it('retries an attempt that does not answer in time', async () => {
    const m = minter({ retry: { ...FAST_RETRY, attemptTimeoutMs: 150 } });
    await m.mint(plan(), context);
    google.faults.generateAccessToken.push('hang');
    const token = await m.mint(plan(), context);
    assert.ok(google.issued.has(token.accessToken));
  });

  it('gives up with 503 once the attempts are spent', async () => {
    const m = minter();
    await m.mint(plan(), context);
    const calls = google.calls.generateAccessToken;
    google.faults.generateAccessToken.push(500, 500, 500, 500, 500);
    const error = await failure(m.mint(plan(), context));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /kept failing \(HTTP 500 INTERNAL; 4 attempt\(s\)\)/);
    assert.equal(google.calls.generateAccessToken - calls, 4);
  });

  it('gives up with 503 when the deadline passes, not later', async () => {
    const m = minter({ retry: { ...FAST_RETRY, maxAttempts: 50, attemptTimeoutMs: 2000 } });
    await m.mint(plan(), context);
    google.faults.generateAccessToken.push('hang');
    const started = Date.now();
    const error = await failure(m.mint(plan(), context, AbortSignal.timeout(200)));
    const elapsed = Date.now() - started;
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /did not succeed before the deadline/);
    // The hung attempt would take 2 s; the deadline ends the wait (the bound is loose on purpose: a busy machine).
    assert.ok(elapsed < 1500, `took ${elapsed} ms`);
  });

  it("reports a failure to get the broker's own credentials as such", async () => {
    google.faults.sts.push(400);
    const error = await failure(minter().mint(plan(), context));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /could not obtain its own Google credentials \(Application Default Credentials\): HTTP 400/);
  });

  it("says when it is the broker's own credentials that keep failing", async () => {
    // gaxios retries STS on its own (within one of our attempts), so one attempt sees several 503s.
    google.faults.sts.push(...Array<number>(8).fill(503));
    const error = await failure(minter({ retry: { ...FAST_RETRY, maxAttempts: 1, attemptTimeoutMs: 10_000 } }).mint(plan(), context));
    assert.match(error.detail, /^the broker's own Google credentials \(Application Default Credentials\) kept failing \(HTTP 503 UNAVAILABLE; 1 attempt\(s\)\)/);
  });

  it('never asks Google for a zero lifetime (Google would read it as the default hour)', async () => {
    const calls = google.calls.generateAccessToken;
    const error = await failure(minter().mint(plan({ lifetimeSeconds: 0 }), context));
    assert.equal(error.code, 'token_expired');
    assert.equal(google.calls.generateAccessToken, calls);
  });

  it('keeps every access token out of error details and causes, however deeply a logger looks', async () => {
    const m = minter();
    await m.mint(plan(), context);
    const errors = [await failure(m.mint(plan({ serviceAccount: UNBOUND }), context))];
    google.faults.generateAccessToken.push(500, 500, 500, 500);
    errors.push(await failure(m.mint(plan(), context)));
    assert.ok(google.issued.size > 1);
    for (const error of errors) {
      const cause = error.cause;
      // inspect() is what a logger shows of an error: its own fields, deeply.
      const text = [error.message, error.detail, JSON.stringify(error), inspect(error, { depth: Infinity }), inspect(cause, { depth: Infinity })].join('\n');
      for (const token of google.issued) assert.ok(!text.includes(token), 'an access token reached an error');
    }
  });

  it('refuses to start with Google SDK debug logging on (it would print access tokens)', () => {
    assert.throws(() => minter({ env: { GOOGLE_SDK_NODE_LOGGING: 'all' } }), /GOOGLE_SDK_NODE_LOGGING/);
    assert.throws(() => applicationDefaultCredentials({ env: { GOOGLE_SDK_NODE_LOGGING: '*' } }), /GOOGLE_SDK_NODE_LOGGING/);
  });

  it('takes a bare origin as google.iamCredentialsUrl', () => {
    assert.throws(() => minter({ iamCredentialsUrl: `${google.url}/v1` }), TypeError);
  });

  it('works with a service-account key file as ADC (a self-signed JWT, no token endpoint)', async () => {
    const keyed = 'keyed-broker@broker-project.iam.gserviceaccount.com';
    const file = await google.keyFile(keyed);
    google.grantTokenCreator(TARGET, keyed);
    const m = minter({ auth: applicationDefaultCredentials({ credentialsFile: file }) });
    const sts = google.calls.sts;
    const token = await m.mint(plan(), context);
    assert.ok(google.issued.has(token.accessToken));
    assert.equal(google.generateRequests.at(-1)?.caller, `serviceAccount:${keyed}`);
    assert.equal(google.calls.sts, sts, 'no token exchange for a key file');
    assert.equal(await m.identity(), keyed);
    const denied = await failure(m.mint(plan({ serviceAccount: UNBOUND }), context));
    assert.ok(denied.detail.includes(`on ${UNBOUND} for ${keyed}`), denied.detail);
  });

  it("knows the broker's identity from the external_account file's impersonation URL", async () => {
    assert.equal(await minter().identity(), google.brokerServiceAccount);
  });
});

describe('doctor: may the broker mint tokens for a service account (testIamPermissions)', () => {
  let google: StandInGoogle;
  before(async () => {
    google = await startGoogle();
    google.addServiceAccount(TARGET);
    google.addServiceAccount(UNBOUND);
    google.grantTokenCreator(TARGET, google.brokerServiceAccount);
  });
  after(() => google.close());
  const check = (serviceAccount: string) =>
    checkImpersonation({ auth: applicationDefaultCredentials({ credentialsFile: google.credentialsFile }), serviceAccount, iamUrl: google.url });

  it('says granted when the broker holds iam.serviceAccounts.getAccessToken', async () => {
    const result = await check(TARGET);
    assert.equal(result.granted, true);
    assert.equal(result.fix, undefined);
  });

  it('prints the gcloud command that adds the missing binding', async () => {
    const result = await check(UNBOUND);
    assert.equal(result.granted, false);
    assert.equal(
      result.fix,
      `gcloud iam service-accounts add-iam-policy-binding ${UNBOUND} --member=serviceAccount:${google.brokerServiceAccount} --role=roles/iam.serviceAccountTokenCreator`,
    );
    assert.match(result.detail, /lacks roles\/iam\.serviceAccountTokenCreator/);
  });

  it('says when the service account does not exist', async () => {
    const result = await check('typo@acme-prod.iam.gserviceaccount.com');
    assert.equal(result.granted, false);
    assert.match(result.detail, /does not exist/);
  });

  it('fails as upstream_unavailable when IAM cannot answer', async () => {
    google.faults.testIamPermissions.push(503);
    const error = await failure(check(TARGET));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.detail, /HTTP 503 UNAVAILABLE/);
  });

  it("says so when ADC cannot name the broker's identity (a federated principal without impersonation)", async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'adc-')), 'external-account.json');
    const config = JSON.parse(await readFile(google.credentialsFile, 'utf8')) as Record<string, unknown>;
    delete config.service_account_impersonation_url;
    await writeFile(file, JSON.stringify(config));
    const auth = applicationDefaultCredentials({ credentialsFile: file });
    assert.equal(await brokerIdentity(auth), UNKNOWN_IDENTITY);
    const result = await checkImpersonation({ auth, serviceAccount: UNBOUND, iamUrl: google.url });
    assert.match(result.fix ?? '', /--member='<the broker's principal>' --role=roles\/iam\.serviceAccountTokenCreator$/);
  });
});

describe('loading the Google adapter', () => {
  const run = (script: string): string =>
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('.', import.meta.url)), encoding: 'utf8' });
  const gaxLoaded = "Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/google-gax/'))";

  it('costs nothing until used: importing the entry point loads no Google library', () => {
    const out = run(`import { createRequire } from 'node:module'; await import('../src/adapters/google/index.js'); console.log(${gaxLoaded});`);
    assert.equal(out.trim(), 'false');
  });

  it('loads only google-auth-library on first use: the direct client needs no gax', () => {
    const out = run(`import { createRequire } from 'node:module'; const m = await import('../src/adapters/google/index.js'); const a = await m.loadGoogleAdapter(); console.log(${gaxLoaded}, typeof a.createGoogleTokenMinter, await a.loadIamClient('direct'));`);
    assert.equal(out.trim(), 'false function undefined');
  });

  it('loads @google-cloud/iam-credentials (and gax) for google.client: sdk', () => {
    const out = run(`import { createRequire } from 'node:module'; const m = await import('../src/adapters/google/index.js'); const a = await m.loadGoogleAdapter(); const f = await a.loadIamClient('sdk'); console.log(${gaxLoaded}, typeof f);`);
    assert.equal(out.trim(), 'true function');
  });
});
