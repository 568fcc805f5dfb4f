/**
 * `node dist/bench/google-mint-cpu.js`: the broker-side CPU of one Google mint through the adapter with each IAM
 * Credentials client (`direct`, the default: one POST over an undici pool; `sdk`: @google-cloud/iam-credentials over
 * its REST transport), beside the same call made with bare node:http and the same ADC bearer. The stand-in Google runs
 * in a child process so only the minting side is counted. Alternating rounds; reports µs of CPU per mint (user +
 * system of this process) and each client's ratio to node:http.
 */
import { fork } from 'node:child_process';
import { request, Agent } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { GoogleMint } from '../src/core/grants.js';
import type { MintContext } from '../src/ports.js';
import { applicationDefaultCredentials } from '../src/adapters/google/credentials.js';
import { createDirectIamClient } from '../src/adapters/google/direct-client.js';
import { createGoogleTokenMinter } from '../src/adapters/google/minter.js';
import { createSdkIamClient } from '../src/adapters/google/sdk-client.js';
import { cpuPerCall } from './harness.js';

const TARGET = 'bench-target@bench-project.iam.gserviceaccount.com';
const SCOPE = 'https://www.googleapis.com/auth/spanner.admin';
const PER_ROUND = 1000;
const ROUNDS = 5;
const CONCURRENCY = 16;

async function standInChild(): Promise<void> {
  const { startGoogle } = await import('../test/support/google.js');
  const google = await startGoogle();
  google.addServiceAccount(TARGET);
  google.grantTokenCreator(TARGET, google.brokerServiceAccount);
  process.send?.({ url: google.url, credentialsFile: google.credentialsFile });
  process.once('disconnect', () => void google.close());
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--stand-in']);
  const { url, credentialsFile } = await new Promise<{ url: string; credentialsFile: string }>((resolve) => child.once('message', (m) => resolve(m as { url: string; credentialsFile: string })));
  const auth = applicationDefaultCredentials({ credentialsFile });
  const directMinter = createGoogleTokenMinter({ iamCredentialsUrl: url, auth, client: createDirectIamClient });
  const sdkMinter = createGoogleTokenMinter({ iamCredentialsUrl: url, auth: applicationDefaultCredentials({ credentialsFile }), client: createSdkIamClient });
  const plan: GoogleMint = { kind: 'google', serviceAccount: TARGET, scopes: [SCOPE], delegates: [], lifetimeSeconds: 900, expiresAt: new Date() };
  const context = {} as MintContext; // the adapter does not read it
  const agent = new Agent({ keepAlive: true });
  const base = new URL(url);
  const body = JSON.stringify({ scope: [SCOPE], lifetime: '900s' });
  const http = async (): Promise<unknown> => {
    const authorization = (await auth.getRequestHeaders()).get('authorization') ?? '';
    return new Promise((resolve, reject) => {
      const req = request(
        { host: base.hostname, port: base.port, method: 'POST', agent, path: `/v1/projects/-/serviceAccounts/${encodeURIComponent(TARGET)}:generateAccessToken`, headers: { authorization, 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(JSON.parse(text)));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  };
  const sdk = (): Promise<unknown> => sdkMinter.mint(plan, context);
  const direct = (): Promise<unknown> => directMinter.mint(plan, context);
  for (let i = 0; i < 500; i += 1) await Promise.all([sdk(), direct(), http()]); // warm-up: ADC token, JIT, sockets
  const results: { sdk: number; direct: number; http: number }[] = [];
  for (let round = 0; round < ROUNDS; round += 1) results.push({ direct: await cpuPerCall(CONCURRENCY, PER_ROUND, direct), sdk: await cpuPerCall(CONCURRENCY, PER_ROUND, sdk), http: await cpuPerCall(CONCURRENCY, PER_ROUND, http) });
  for (const [i, r] of results.entries()) {
    console.log(
      `round ${i + 1}: adapter direct ${r.direct.toFixed(0)} µs CPU/mint (${(r.direct / r.http).toFixed(2)}× node:http), adapter sdk ${r.sdk.toFixed(0)} µs (${(r.sdk / r.http).toFixed(2)}×), node:http ${r.http.toFixed(0)} µs; sdk ÷ direct ${(r.sdk / r.direct).toFixed(2)}`,
    );
  }
  await Promise.all([directMinter.close(), sdkMinter.close()]);
  agent.destroy();
  child.disconnect();
}

if (process.argv.includes('--stand-in')) await standInChild();
else await main();
