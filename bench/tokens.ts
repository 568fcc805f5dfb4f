/**
 * Pre-minting GitLab-shaped RS256 ID tokens for the benchmark. Each jti is single use, so every request needs its own
 * token; RSA-2048 signing costs ~0.3 ms, so the work is split over worker threads before any measurement starts.
 * The claims are the dev token factory's defaults; each token gets its own jti, job and pipeline id (real jobs differ,
 * and the GitLab client coalesces identical in-flight lookups, which would flatter the figures).
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, sign } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { defaultIdTokenClaims, withOverrides } from '../src/dev/token-factory.js';

export interface MintJob {
  readonly privateKeyPem: string;
  readonly kid: string;
  readonly issuer: string;
  readonly audience: string;
  readonly count: number;
  /** First job id; token i gets job id firstJobId + i. */
  readonly firstJobId: number;
  readonly overrides: Record<string, unknown>;
  /** exp - iat (default 3600 s); bench/soak.ts uses short-lived tokens so the replay store reaches a steady size. */
  readonly lifetimeSeconds?: number;
}

/** Signs `job.count` tokens in this thread. */
export function mintTokens(job: MintJob): string[] {
  const key = createPrivateKey(job.privateKeyPem);
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: job.kid, typ: 'JWT' })).toString('base64url');
  const base = withOverrides(defaultIdTokenClaims({ issuer: job.issuer, audience: job.audience, lifetimeSeconds: job.lifetimeSeconds ?? 3600 }), job.overrides);
  const tokens: string[] = [];
  for (let i = 0; i < job.count; i++) {
    const id = String(job.firstJobId + i);
    const claims = { ...base, jti: `bench-${id}-${Math.random().toString(36).slice(2)}`, job_id: id, pipeline_id: id };
    const signingInput = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    tokens.push(`${signingInput}.${sign('sha256', Buffer.from(signingInput), key).toString('base64url')}`);
  }
  return tokens;
}

/** Splits the job over `threads` workers (bench/mint-worker.js) and returns the tokens in order. */
export async function mintInParallel(job: MintJob, threads: number): Promise<string[]> {
  const per = Math.ceil(job.count / threads);
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, index) => {
      const count = Math.max(0, Math.min(per, job.count - index * per));
      const part: MintJob = { ...job, count, firstJobId: job.firstJobId + index * per };
      return new Promise<string[]>((resolve, reject) => {
        const worker = new Worker(new URL('./mint-worker.js', import.meta.url), { workerData: part });
        // Resolve on exit, not on the message: the caller pins all its threads next (taskset -a), which fails if a
        // worker thread disappears while taskset walks /proc/PID/task.
        let minted: string[] | undefined;
        worker.once('message', (tokens: string[]) => (minted = tokens));
        worker.once('error', reject);
        worker.once('exit', (code) => (code === 0 && minted ? resolve(minted) : reject(new Error(`mint worker exited with ${code}`))));
      });
    }),
  );
  return parts.flat();
}
