/**
 * The crypto bound: how many (jose RS256 verify + jose ES256 sign) pairs one core does per second, measured in its own
 * process pinned to one core by bench/run.js. This is the work an exchange cannot avoid; everything else the broker
 * does per request is overhead against it. Prints one JSON line.
 */
import { generateKeyPairSync } from 'node:crypto';
import { compactVerify, importJWK, SignJWT, type JWK } from 'jose';
import { defaultIdTokenClaims } from '../src/dev/token-factory.js';
import { mintTokens } from './tokens.js';

const IN_FLIGHT = 8;

export interface CryptoBound {
  readonly verifyPerSecond: number;
  readonly signPerSecond: number;
  /** verify + sign pairs per wall second on the pinned core. */
  readonly pairsPerSecond: number;
  /** The same pairs per CPU-second of this process. */
  readonly pairsPerCpuSecond: number;
}

/** Runs `op` with IN_FLIGHT concurrent loops for `ms` (and at most `max` ops); ops per wall and per CPU second. */
async function rate(op: () => Promise<unknown>, ms: number, max: number): Promise<{ wall: number; cpu: number }> {
  for (let i = 0; i < 200; i++) await op(); // warm up (JIT, key caches)
  let done = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (done < max && performance.now() < deadline) {
        await op();
        done++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall: done / seconds, cpu: done / ((cpu.user + cpu.system) / 1e6) };
}

async function main(): Promise<void> {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const issuer = 'https://gitlab.example.com';
  const [token] = mintTokens({
    privateKeyPem: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    kid: 'k1', issuer, audience: 'https://broker.example.com', count: 1, firstJobId: 1, overrides: {},
  }) as [string];
  const rsaPublic = await importJWK({ ...(rsa.publicKey.export({ format: 'jwk' }) as JWK), alg: 'RS256' }, 'RS256');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecPrivate = await importJWK({ ...(ec.privateKey.export({ format: 'jwk' }) as JWK), alg: 'ES256' }, 'ES256');
  const claims = defaultIdTokenClaims({ issuer, audience: 'x' });
  const brokerClaims = {
    rule: 'payments-deploy-production', project_id: claims.project_id, project_path: claims.project_path, pipeline_id: claims.pipeline_id,
    job_id: claims.job_id, ref_path: claims.ref_path, sha: claims.sha, user_login: claims.user_login, environment: claims.environment, source_issuer: issuer,
  };
  const verify = () => compactVerify(token, rsaPublic, { algorithms: ['RS256'] });
  const sign = () =>
    new SignJWT(brokerClaims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .setIssuer('https://broker.example.com').setSubject('project:20:rule:payments-deploy-production').setAudience('https://deploy-api.internal')
      .setIssuedAt().setNotBefore('0s').setExpirationTime('10m').setJti(crypto.randomUUID())
      .sign(ecPrivate);
  const verifyRate = await rate(verify, 1000, 50_000);
  const signRate = await rate(sign, 1000, 50_000);
  const pairRate = await rate(async () => {
    await verify();
    await sign();
  }, 1500, 50_000);
  const result: CryptoBound = { verifyPerSecond: verifyRate.wall, signPerSecond: signRate.wall, pairsPerSecond: pairRate.wall, pairsPerCpuSecond: pairRate.cpu };
  console.log(JSON.stringify(result));
}

void main();
