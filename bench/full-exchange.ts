/**
 * Shared by bench/replicas.ts and bench/soak.ts: the full exchange a deploy job makes, a broker JWT and a Linkerd
 * certificate in one request (`{"grants":{"token":{},"linkerd":{"csr":…}}}`) under a rule with `jobRunning: true`,
 * answered by the stand-in GitLab. Writes the CA, policy and GitLab token to a temp dir and pre-mints ID tokens.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCaMaterial } from '../src/adapters/ca/ephemeral.js';
import { generateKeyAndRequest } from '../src/adapters/ca/request.js';
import type { ChildSettings } from './broker-child.js';
import { IDENTITY, NAMING, SPIFFE_ID } from './linkerd.js';
import { startStandIn, type StandIn } from './standin.js';
import { mintInParallel } from './tokens.js';
import { paymentsProductionPolicy } from './policy.js';

export const AUDIENCE = 'https://broker.bench.example';

export const FULL_POLICY = paymentsProductionPolicy('payments-deploy-production', ['token: { audiences: [https://deploy-api.internal], lifetime: 10m }', 'linkerd: { serviceAccount: deploy, namespace: ci, lifetime: 10m }']);

export interface FullExchange {
  readonly dir: string;
  readonly standIn: StandIn;
  /** The request body: both grants, one P-256 CSR naming the identity the rule grants. */
  readonly body: string;
  /** Settings for a broker child; give each child its own audit file. */
  settings(auditName: string, extra?: Partial<ChildSettings>): ChildSettings;
  /** `count` distinct ID tokens (own jti, job and pipeline id), job ids from `firstJobId`, on `threads` workers. */
  mint(count: number, firstJobId: number, options?: { threads?: number; lifetimeSeconds?: number }): Promise<string[]>;
  close(): Promise<void>;
}

export async function prepareFullExchange(): Promise<FullExchange> {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-broker-bench-full-'));
  const material = await generateCaMaterial({ ...NAMING });
  const linkerd = { issuerCertFile: join(dir, 'issuer.crt'), issuerKeyFile: join(dir, 'issuer.key'), trustAnchorsFile: join(dir, 'ca.crt') };
  await writeFile(linkerd.issuerCertFile, material.issuerCertPem);
  await writeFile(linkerd.issuerKeyFile, material.issuerKeyPem, { mode: 0o600 });
  await writeFile(linkerd.trustAnchorsFile, material.trustAnchorsPem);
  const policyPath = join(dir, 'policy.yaml');
  const apiTokenFile = join(dir, 'gitlab-token');
  await writeFile(policyPath, FULL_POLICY);
  await writeFile(apiTokenFile, 'bench-read-api-token\n', { mode: 0o600 });
  const csr = generateKeyAndRequest({ dnsNames: [IDENTITY], uris: [SPIFFE_ID] }).csrPem;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const privateKeyPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const standIn = await startStandIn({ ...(rsa.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' });
  return {
    dir,
    standIn,
    body: JSON.stringify({ grants: { token: {}, linkerd: { csr } } }),
    settings: (auditName, extra = {}) => ({ issuer: standIn.issuer, audience: AUDIENCE, policyPath, auditFile: join(dir, auditName), apiTokenFile, linkerd, ...extra }),
    mint: (count, firstJobId, options = {}) =>
      mintInParallel({ privateKeyPem, kid, issuer: standIn.issuer, audience: AUDIENCE, count, firstJobId, overrides: {}, lifetimeSeconds: options.lifetimeSeconds }, options.threads ?? 2),
    async close() {
      await standIn.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
