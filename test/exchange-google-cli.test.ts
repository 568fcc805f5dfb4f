/**
 * `oidc-broker exchange --grant google` against a real broker minting through the stand-in Google: the token file and
 * the dotenv lines gcloud, Terraform and the Spanner clients read; and `--refresh`, whose background worker rewrites
 * the token file atomically before it expires, until the session ends.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nextRefreshAt, refreshLoop } from '../src/cli/commands/refresh-loop.js';
import { runCli, runCliInProcess } from './support/cli-run.js';
import { startGoogleBroker, TARGET, type GoogleBroker } from './support/google-broker.js';
import { AUDIENCE } from './support/policies.js';

let gb: GoogleBroker;
let dir: string;

before(async () => {
  gb = await startGoogleBroker();
  dir = await mkdtemp(join(tmpdir(), 'oidc-broker-google-cli-'));
});
after(async () => {
  await gb.close();
  await rm(dir, { recursive: true, force: true });
});

describe('exchange --grant google', () => {
  it('writes google-access-token (0600) and the dotenv lines for gcloud, Terraform and Spanner', async () => {
    const out = join(dir, 'once');
    const dotenv = join(dir, 'once.env');
    const { code, stderr } = await runCliInProcess(['exchange', '--broker', gb.h.url, '--grant', 'google', '--out', out, '--dotenv', dotenv], await gb.h.gitlab.token(AUDIENCE));
    assert.equal(code, 0, stderr);
    const file = join(out, 'google-access-token');
    const accessToken = readFileSync(file, 'utf8');
    assert.ok(gb.google.issued.has(accessToken), 'the file holds the token Google issued');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const env = readFileSync(dotenv, 'utf8');
    assert.match(env, new RegExp(`^GOOGLE_OAUTH_ACCESS_TOKEN=${accessToken}$`, 'm'));
    assert.match(env, new RegExp(`^CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=${file}$`, 'm'));
    assert.match(env, /^SPANNER_DATABASE_ROLE=migrator$/m);
    assert.match(env, new RegExp(`^GOOGLE_SERVICE_ACCOUNT=${TARGET}$`, 'm'));
    assert.equal(statSync(dotenv).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(out).filter((name) => name.endsWith('.tmp')), []);
  });

  it('with --refresh, rewrites the token file atomically before it expires, in the background, until the session ends', { timeout: 120_000 }, async () => {
    const out = join(dir, 'refreshed');
    const file = join(out, 'google-access-token');
    // An ID token with 30 s left: the session (and every token) ends with it, so the worker refreshes a few times, fast.
    // (Not less: on a loaded machine the CLI alone can take 10 s to start, and a token about to expire is refused.)
    const idToken = await gb.h.gitlab.token(AUDIENCE, { exp: Math.floor(Date.now() / 1000) + 30 });
    const { code, stderr } = await runCli(['exchange', '--broker', gb.h.url, '--grant', 'google', '--out', out, '--refresh'], { BROKER_ID_TOKEN: idToken });
    assert.equal(code, 0, stderr);
    const pid = /refreshing in the background until .* \(pid (\d+); log .*refresh\.log\)/.exec(stderr)?.[1];
    assert.ok(pid, stderr);
    assert.equal(readFileSync(join(out, 'refresh.pid'), 'utf8'), `${pid}\n`, 'refresh.pid names the worker, for a job that stops it itself');
    const first = readFileSync(file, 'utf8');
    const firstInode = statSync(file).ino;
    // Read the file as a consumer would, over and over, while the worker rewrites it: always a whole token.
    const seen = new Set<string>([first]);
    const log = join(out, 'refresh.log');
    const deadline = Date.now() + 50_000;
    while (Date.now() < deadline && !/no further refresh|stopping/.test(readFileSync(log, 'utf8'))) {
      const content = readFileSync(file, 'utf8');
      assert.ok(gb.google.issued.has(content), `a partial or unknown token was read: ${content.length} chars`);
      seen.add(content);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    seen.add(readFileSync(file, 'utf8'));
    const logText = readFileSync(log, 'utf8');
    assert.match(logText, /refreshed; the new credentials expire at/);
    assert.match(logText, /the session ends at .*; no further refresh/);
    assert.ok(seen.size >= 2, 'the file was rewritten with a fresh token');
    assert.notEqual(statSync(file).ino, firstInode, 'rewritten by rename, not in place');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(out).filter((name) => name.endsWith('.tmp')), []);
    assert.ok(!logText.includes(first), 'no token in the worker log');
  });
});

describe('the refresh schedule', () => {
  it('renews ahead of expiry but never in the first half of a credential\'s life', () => {
    const now = 1_000_000;
    assert.equal(nextRefreshAt(now, now + 3_600_000, 300), now + 3_300_000);
    assert.equal(nextRefreshAt(now, now + 400_000, 300), now + 200_000);
    assert.equal(nextRefreshAt(now, now + 500, 300), now + 1000);
  });

  it('stops at the first refusal (the job finished) and retries an outage', async () => {
    let clock = 0;
    const statuses = [503, 200, 403];
    const lines: string[] = [];
    const code = await refreshLoop({
      plan: { session: { token: 's', expiresAt: new Date(10_000_000).toISOString() }, expiresAt: new Date(1_000_000).toISOString() },
      beforeSeconds: 300,
      log: (line) => lines.push(line),
      now: () => clock,
      sleep: async (ms) => void (clock += ms),
      refreshOnce: async () => {
        const status = statuses.shift() ?? 500;
        return status === 200 ? { status, expiresAt: clock + 1_000_000 } : { status, detail: 'job_not_running: the job is not running' };
      },
    });
    assert.equal(code, 1);
    assert.deepEqual(lines.map((line) => line.split(' (')[0]?.split(';')[0]), ['refresh failed', 'refreshed', 'the broker refused the refresh']);
  });
});
