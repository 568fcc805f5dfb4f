/**
 * The direct IAM Credentials client against the one it replaced: @google-cloud/iam-credentials over its REST transport.
 * Same stand-in Google, same inputs (scopes, lifetimes, delegates), same faults (Google's 400/401/403/404/429/500
 * bodies, a proxy's HTML page, a hung answer): both minters must send Google the same request and give the same result,
 * or the same coded error with the same detail and cause. Then what only the direct client handles itself (answers no
 * Google gives: malformed, oversized, redirected, dropped), against a bare loopback server.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isBrokerError } from '../src/core/errors.js';
import type { GoogleMint } from '../src/core/grants.js';
import type { GoogleAccessToken } from '../src/ports.js';
import { applicationDefaultCredentials } from '../src/adapters/google/credentials.js';
import { createDirectIamClient } from '../src/adapters/google/direct-client.js';
import type { IamCredentialsClientFactory } from '../src/adapters/google/iam-client.js';
import { createGoogleTokenMinter, type GoogleMinter } from '../src/adapters/google/minter.js';
import { createSdkIamClient } from '../src/adapters/google/sdk-client.js';
import { contextAt } from './linkerd-fixtures.js';
import { startGoogle, type Fault, type GenerateAccessTokenCall, type StandInGoogle } from './support/google.js';

const TARGET = 'spanner-migrator@acme-prod.iam.gserviceaccount.com';
const DELEGATE = 'hop@acme-shared.iam.gserviceaccount.com';
const SECOND_DELEGATE = 'hop2@acme-shared.iam.gserviceaccount.com';
const UNBOUND = 'nobody-granted@acme-prod.iam.gserviceaccount.com';
const SPANNER_ADMIN = 'https://www.googleapis.com/auth/spanner.admin';
const SPANNER_DATA = 'https://www.googleapis.com/auth/spanner.data';
const RETRY = { maxAttempts: 3, attemptTimeoutMs: 300, baseDelayMs: 1, capDelayMs: 5, random: () => 0.5 };

function plan(overrides: Partial<GoogleMint> = {}): GoogleMint {
  return { kind: 'google', serviceAccount: TARGET, scopes: [SPANNER_ADMIN], delegates: [], lifetimeSeconds: 900, expiresAt: new Date(Date.now() + 900_000), ...overrides };
}

/** What one mint did, in terms both clients must agree on. */
interface Outcome {
  readonly requests: GenerateAccessTokenCall[];
  readonly result?: Omit<GoogleAccessToken, 'accessToken' | 'expiresAt'> & { readonly lifetimeSeconds: number };
  readonly error?: { readonly code: string; readonly status: number; readonly detail: string; readonly cause: string | undefined };
}

const cases: { name: string; plan: Partial<GoogleMint>; faults?: Fault[] }[] = [
  { name: 'one scope, 15 minutes', plan: {} },
  { name: 'two scopes, 10 minutes, a Spanner database role', plan: { scopes: [SPANNER_ADMIN, SPANNER_DATA], lifetimeSeconds: 600, spannerDatabaseRole: 'migrator' } },
  { name: 'one delegate', plan: { delegates: [DELEGATE] } },
  { name: 'two delegates', plan: { delegates: [DELEGATE, SECOND_DELEGATE] } },
  { name: 'the full hour', plan: { lifetimeSeconds: 3600 } },
  { name: 'a lifetime Google rejects (400)', plan: { lifetimeSeconds: 7200 } },
  { name: 'no binding on the target (403)', plan: { serviceAccount: UNBOUND } },
  { name: 'no binding on the last hop of a chain (403)', plan: { serviceAccount: UNBOUND, delegates: [DELEGATE] } },
  { name: 'an unknown service account (404)', plan: { serviceAccount: 'typo@acme-prod.iam.gserviceaccount.com' } },
  { name: 'an unknown delegate (404)', plan: { delegates: ['ghost@acme-shared.iam.gserviceaccount.com'] } },
  { name: "Google's 400", plan: {}, faults: [400] },
  { name: "Google's 401", plan: {}, faults: [401] },
  { name: "Google's 403", plan: {}, faults: [403] },
  { name: "Google's 404", plan: {}, faults: [404] },
  { name: "Google's 429, then a token", plan: {}, faults: [429] },
  { name: "Google's 500, then a token", plan: {}, faults: [500] },
  { name: "a proxy's HTML 502, then a token", plan: {}, faults: ['html'] },
  { name: 'a hung answer, then a token', plan: {}, faults: ['hang'] },
  { name: '429 on every attempt', plan: {}, faults: [429, 429, 429] },
  { name: '500 on every attempt', plan: {}, faults: [500, 500, 500] },
  { name: 'a hung answer on every attempt', plan: {}, faults: ['hang', 'hang', 'hang'] },
  { name: 'a zero lifetime (never sent)', plan: { lifetimeSeconds: 0 } },
];

describe('direct IAM Credentials client ≡ @google-cloud/iam-credentials (REST transport)', () => {
  let google: StandInGoogle;
  let direct: GoogleMinter;
  let sdk: GoogleMinter;
  const context = contextAt(new Date());
  const minter = (client: IamCredentialsClientFactory): GoogleMinter =>
    createGoogleTokenMinter({ iamCredentialsUrl: google.url, auth: applicationDefaultCredentials({ credentialsFile: google.credentialsFile }), retry: RETRY, env: {}, client });

  async function outcome(m: GoogleMinter, mint: GoogleMint, faults: readonly Fault[]): Promise<Outcome> {
    google.faults.generateAccessToken.push(...faults);
    const seen = google.generateRequests.length;
    try {
      const token = await m.mint(mint, context, AbortSignal.timeout(5000));
      assert.ok(google.issued.has(token.accessToken), 'the token is one Google issued');
      const { accessToken: _token, expiresAt, ...rest } = token;
      return { requests: google.generateRequests.slice(seen), result: { ...rest, lifetimeSeconds: Math.round((expiresAt.getTime() - Date.now()) / 1000) } };
    } catch (err) {
      assert.ok(isBrokerError(err), `a coded error, not ${String(err)}`);
      const cause = err.cause instanceof Error ? err.cause.message : undefined;
      return { requests: google.generateRequests.slice(seen), error: { code: err.code, status: err.status, detail: err.detail, cause } };
    } finally {
      assert.equal(google.faults.generateAccessToken.length, 0, 'every queued fault was answered');
    }
  }

  before(async () => {
    google = await startGoogle();
    for (const account of [TARGET, DELEGATE, SECOND_DELEGATE, UNBOUND]) google.addServiceAccount(account);
    google.grantTokenCreator(TARGET, google.brokerServiceAccount);
    google.grantTokenCreator(DELEGATE, google.brokerServiceAccount);
    google.grantTokenCreator(SECOND_DELEGATE, DELEGATE);
    google.grantTokenCreator(TARGET, DELEGATE);
    google.grantTokenCreator(TARGET, SECOND_DELEGATE);
    direct = minter(createDirectIamClient);
    sdk = minter(createSdkIamClient);
    // The broker's own ADC token, once per minter, so each case's requests are the mint's alone.
    await Promise.all([direct.mint(plan(), context), sdk.mint(plan(), context)]);
  });
  after(async () => {
    await Promise.all([direct.close(), sdk.close()]);
    await google.close();
  });

  for (const { name, plan: overrides, faults = [] } of cases) {
    it(`gives the same answer for ${name}`, async () => {
      const reference = await outcome(sdk, plan(overrides), faults);
      const ours = await outcome(direct, plan(overrides), faults);
      // Both lifetimes are rounded from Google's expireTime (whole seconds) as each call ended: a second apart at most.
      if (reference.result && ours.result) assert.ok(Math.abs(reference.result.lifetimeSeconds - ours.result.lifetimeSeconds) <= 1);
      const comparable = (o: Outcome) => ({ ...o, ...(o.result ? { result: { ...o.result, lifetimeSeconds: undefined } } : {}) });
      assert.deepEqual(comparable(ours), comparable(reference));
      assert.ok(ours.result !== undefined || ours.error !== undefined);
    });
  }

  it('sends no delegates field for a direct request, as the SDK does', () => {
    const undelegated = google.generateRequests.filter((call) => call.serviceAccount === TARGET && call.body.delegates === undefined);
    assert.ok(undelegated.length > 0);
  });
});

describe('the direct client with answers no Google should give', () => {
  let google: StandInGoogle;
  let server: Server;
  let url: string;
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  let hits: string[] = [];
  let direct: GoogleMinter;
  const context = contextAt(new Date());

  before(async () => {
    google = await startGoogle();
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      req.resume();
      req.on('end', () => answer(req, res));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    direct = createGoogleTokenMinter({ iamCredentialsUrl: url, auth: applicationDefaultCredentials({ credentialsFile: google.credentialsFile }), retry: RETRY, env: {} });
  });
  after(async () => {
    await direct.close();
    server.closeAllConnections();
    server.close();
    await google.close();
  });

  const json = (status: number, body: string, headers: Record<string, string> = {}) => (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  };
  const table: { name: string; answer: (req: IncomingMessage, res: ServerResponse) => void; detail: RegExp; attempts: number }[] = [
    { name: 'a token without an expiry', answer: json(200, '{"accessToken":"ya29.x"}'), detail: /answered without an access token or expiry/, attempts: 1 },
    { name: 'an expiry that is not a time', answer: json(200, '{"accessToken":"ya29.x","expireTime":"soon"}'), detail: /answered without an access token or expiry/, attempts: 1 },
    { name: 'a 200 that is not JSON', answer: json(200, '<html></html>'), detail: /answered without an access token or expiry/, attempts: 1 },
    { name: 'an answer over 64 KiB', answer: json(200, JSON.stringify({ accessToken: 'x'.repeat(70_000), expireTime: '2030-01-01T00:00:00Z' })), detail: /call failed \(HTTP 200\)/, attempts: 1 },
    { name: 'a redirect (never followed: the bearer stays with the configured origin)', answer: json(302, '', { location: '/elsewhere' }), detail: /call failed \(HTTP 302\)/, attempts: 1 },
    { name: 'a dropped connection, on every attempt', answer: (req) => req.socket.destroy(), detail: /kept failing \(UND_ERR_SOCKET; 3 attempt\(s\)\)/, attempts: 3 },
  ];
  for (const row of table) {
    it(`refuses ${row.name} with upstream_unavailable`, async () => {
      answer = row.answer;
      hits = [];
      await assert.rejects(direct.mint(plan(), context, AbortSignal.timeout(5000)), (err) => isBrokerError(err) && err.code === 'upstream_unavailable' && row.detail.test(err.detail));
      assert.deepEqual(hits, Array<string>(row.attempts).fill(`/v1/projects/-/serviceAccounts/${encodeURIComponent(TARGET)}:generateAccessToken`));
    });
  }

  it('reads an expireTime with nanoseconds, to the second', async () => {
    answer = json(200, '{"accessToken":"ya29.fine","expireTime":"2030-01-02T03:04:05.123456789Z"}');
    const token = await direct.mint(plan(), context);
    assert.equal(token.accessToken, 'ya29.fine');
    assert.equal(token.expiresAt.toISOString(), '2030-01-02T03:04:05.000Z');
  });
});
