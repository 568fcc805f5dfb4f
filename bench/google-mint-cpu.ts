/**
 * `node dist/bench/google-mint-cpu.js`: the broker-side CPU of one Google mint through the adapter
 * (@google-cloud/iam-credentials over its REST transport), beside the same call made with node:http and the same ADC
 * bearer (the floor of any implementation on this runtime). The stand-in Google runs in a child process so only the
 * minting side is counted. Alternating rounds; reports µs of CPU per mint (user + system of this process) and the ratio.
 */
import { fork } from 'node:child_process';
import { request, Agent } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { GoogleMint } from '../src/core/grants.js';
import type { MintContext } from '../src/ports.js';
import { applicationDefaultCredentials } from '../src/adapters/google/credentials.js';
import { createGoogleTokenMinter } from '../src/adapters/google/minter.js';

const TARGET = 'bench-target@bench-project.iam.gserviceaccount.com';
const SCOPE = 'https://www.googleapis.com/auth/spanner.admin';
const PER_ROUND = 1000;
const ROUNDS = 3;
const CONCURRENCY = 16;

async function standInChild(): Promise<void> {
  const { startGoogle } = await import('../test/support/google.js');
  const google = await startGoogle();
  google.addServiceAccount(TARGET);
  google.grantTokenCreator(TARGET, google.brokerServiceAccount);
  process.send?.({ url: google.url, credentialsFile: google.credentialsFile });
  process.once('disconnect', () => void google.close());
}

async function cpuPerCall(call: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < PER_ROUND) await call();
  }));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / PER_ROUND;
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--stand-in']);
  const { url, credentialsFile } = await new Promise<{ url: string; credentialsFile: string }>((resolve) => child.once('message', (m) => resolve(m as { url: string; credentialsFile: string })));
  const auth = applicationDefaultCredentials({ credentialsFile });
  const minter = createGoogleTokenMinter({ iamCredentialsUrl: url, auth });
  const plan: GoogleMint = { kind: 'google', serviceAccount: TARGET, scopes: [SCOPE], delegates: [], lifetimeSeconds: 900, expiresAt: new Date() };
  const context = {} as MintContext; // the adapter does not read it
  const agent = new Agent({ keepAlive: true });
  const base = new URL(url);
  const body = JSON.stringify({ scope: [SCOPE], lifetime: '900s' });
  const direct = async (): Promise<unknown> => {
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
  const sdk = (): Promise<unknown> => minter.mint(plan, context);
  for (let i = 0; i < 200; i += 1) await Promise.all([sdk(), direct()]); // warm-up: ADC token, JIT, sockets
  const results: { sdk: number; direct: number }[] = [];
  for (let round = 0; round < ROUNDS; round += 1) results.push({ sdk: await cpuPerCall(sdk), direct: await cpuPerCall(direct) });
  for (const [i, r] of results.entries()) {
    console.log(`round ${i + 1}: adapter ${r.sdk.toFixed(0)} µs CPU/mint, node:http ${r.direct.toFixed(0)} µs CPU/mint, ratio ${(r.sdk / r.direct).toFixed(2)}`);
  }
  await minter.close();
  agent.destroy();
  child.disconnect();
}

if (process.argv.includes('--stand-in')) await standInChild();
else await main();
