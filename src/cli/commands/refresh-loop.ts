/**
 * `oidc-broker exchange --refresh`: keeps a long job supplied after the exchange. A worker process in the background
 * of the job calls POST /v1/refresh with the exchange's session before the credentials expire and rewrites their files
 * atomically (write a temporary file, fsync, rename), so gcloud (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE) and the client
 * libraries that re-read the file always see a whole, valid token. It stops when the session ends, or when the broker
 * refuses (the job finished, an approval was withdrawn): a refusal is final, an outage is retried.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export interface RefreshPlan {
  readonly session: { readonly token: string; readonly expiresAt: string };
  /** When the first credential written expires: the next refresh comes before it. */
  readonly expiresAt: string;
}

export const refreshPlanSchema = z.strictObject({
  session: z.strictObject({ token: z.string().min(1), expiresAt: z.string() }),
  expiresAt: z.string(),
});

/** The earliest `expiresAt` among the granted credentials of an exchange or refresh answer. */
export function earliestExpiry(grants: Readonly<Record<string, { readonly expiresAt: string } | undefined>>): number | undefined {
  const times = Object.values(grants).map((grant) => Date.parse(String(grant?.expiresAt))).filter((time) => Number.isFinite(time));
  return times.length === 0 ? undefined : Math.min(...times);
}

/**
 * When to refresh credentials that expire at `expiresAt`: `before` seconds ahead, but never in the first half of their
 * life (a short-lived token would otherwise be refreshed in a loop), and never after the session ends.
 */
export function nextRefreshAt(now: number, expiresAt: number, beforeSeconds: number): number {
  return Math.max(expiresAt - beforeSeconds * 1000, now + (expiresAt - now) / 2, now + 1000);
}

export interface RefreshLoopOptions {
  readonly plan: RefreshPlan;
  readonly beforeSeconds: number;
  /** One refresh: the reply's status and, on 200, the earliest new expiry (files already rewritten). */
  refreshOnce(session: string): Promise<{ status: number; expiresAt?: number; detail?: string }>;
  readonly log: (line: string) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Refresh until the session ends or the broker refuses; returns the exit code (0: the session ended normally). */
export async function refreshLoop(options: RefreshLoopOptions): Promise<number> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? wait;
  const sessionEnds = Date.parse(options.plan.session.expiresAt);
  let expiresAt = Date.parse(options.plan.expiresAt);
  for (;;) {
    const at = nextRefreshAt(now(), expiresAt, options.beforeSeconds);
    if (at >= sessionEnds) {
      options.log(`the session ends at ${new Date(sessionEnds).toISOString()} (with the job's ID token); no further refresh`);
      return 0;
    }
    await sleep(at - now());
    let outcome: Awaited<ReturnType<RefreshLoopOptions['refreshOnce']>>;
    try {
      outcome = await options.refreshOnce(options.plan.session.token);
    } catch (err) {
      outcome = { status: 0, detail: (err as Error).message };
    }
    if (outcome.status === 200 && outcome.expiresAt !== undefined) {
      expiresAt = outcome.expiresAt;
      options.log(`refreshed; the new credentials expire at ${new Date(expiresAt).toISOString()}`);
    } else if (outcome.status === 401 || outcome.status === 403 || outcome.status === 400) {
      options.log(`the broker refused the refresh (${outcome.status}: ${outcome.detail ?? ''}); stopping`);
      return 1;
    } else {
      // An outage: try again soon, but while the current credentials still hold.
      options.log(`refresh failed (${outcome.status || 'no answer'}: ${outcome.detail ?? ''}); retrying`);
      if (expiresAt <= now()) {
        options.log('the credentials have expired; stopping');
        return 3;
      }
      // nextRefreshAt then waits half of what is left of the current credentials: a backoff that ends before they do.
    }
  }
}

/**
 * Start the worker: this CLI again, with `--refresh-worker`, the plan on its stdin (never on its command line, where
 * `ps` would show the session), its output in `<out>/refresh.log`, its process id in `<out>/refresh.pid`. It stays in
 * the job's process group, so the runner stops it with the job; it is not waited for.
 */
export async function startRefreshWorker(args: readonly string[], plan: RefreshPlan, out: string): Promise<number> {
  const logFile = join(out, 'refresh.log');
  appendFileSync(logFile, '', { mode: 0o600 });
  const log = openSync(logFile, 'a');
  const script = process.argv[1] ?? '';
  const child = spawn(process.execPath, [script, ...args, '--refresh-worker'], { stdio: ['pipe', log, log] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    (child.stdin as NonNullable<typeof child.stdin>).end(JSON.stringify(plan), () => resolve());
  });
  child.unref();
  // A runner that does not end the job's process group (a shell executor) leaves the worker running: the job's script
  // can stop it with this file once it needs no more fresh credentials.
  if (child.pid !== undefined) writeFileSync(join(out, 'refresh.pid'), `${child.pid}\n`, { mode: 0o600 });
  return child.pid ?? 0;
}
