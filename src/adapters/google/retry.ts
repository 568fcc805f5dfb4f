/**
 * Retries with exponential backoff and full jitter (Google's guidance for IAM Credentials), bounded by the caller's
 * deadline: every attempt and every pause ends when the deadline signal aborts, so a caller never waits past it.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Longest a single attempt may take before it counts as a timeout and is retried. */
  readonly attemptTimeoutMs: number;
  /** First pause's upper bound; each later bound doubles, up to capMs. */
  readonly baseDelayMs: number;
  readonly capDelayMs: number;
  /** In [0, 1); Math.random unless a test fixes it. */
  readonly random: () => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, attemptTimeoutMs: 2000, baseDelayMs: 100, capDelayMs: 1000, random: Math.random };

/** Why a retried call gave up: the last failure, and whether the deadline (rather than the attempt budget) ended it. */
export class RetriesExhausted extends Error {
  override readonly name = 'RetriesExhausted';
  constructor(
    readonly lastError: unknown,
    readonly attempts: number,
    readonly deadlinePassed: boolean,
  ) {
    super(`gave up after ${attempts} attempt(s)${deadlinePassed ? ', deadline passed' : ''}`);
  }
}

/** Thrown into an attempt's race when that attempt alone ran out of time. */
export class AttemptTimedOut extends Error {
  override readonly name = 'AttemptTimedOut';
  readonly code = 'ETIMEDOUT';
}

/** Full jitter: a pause drawn uniformly from [0, min(cap, base · 2^attempt)). */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return Math.floor(policy.random() * Math.min(policy.capDelayMs, policy.baseDelayMs * 2 ** attempt));
}

/**
 * `promise`, or an AttemptTimedOut as soon as the deadline aborts or `timeoutMs` pass (the abandoned promise's outcome
 * is ignored). One timer and one listener: AbortSignal.any/timeout per attempt cost measurable CPU per mint.
 */
function raceAttempt<T>(promise: Promise<T>, deadline: AbortSignal, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      deadline.removeEventListener('abort', onDeadline);
    };
    const onDeadline = (): void => {
      settle();
      reject(new AttemptTimedOut('no answer before the deadline'));
    };
    const timer = setTimeout(() => {
      settle();
      reject(new AttemptTimedOut(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    promise.then(
      (value) => {
        settle();
        resolve(value);
      },
      (err: unknown) => {
        settle();
        reject(err);
      },
    );
    if (deadline.aborted) onDeadline();
    else deadline.addEventListener('abort', onDeadline, { once: true });
  });
}

function pause(ms: number, deadline: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    deadline.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      deadline.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * Run `attempt` until it succeeds, fails with an error `retryable` rejects, the attempt budget is spent or `deadline`
 * aborts. Non-retryable errors are rethrown as they are; the other two endings throw RetriesExhausted.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  retryable: (error: unknown) => boolean,
  deadline: AbortSignal,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<T> {
  let lastError: unknown;
  for (let n = 0; n < policy.maxAttempts; n += 1) {
    if (deadline.aborted) throw new RetriesExhausted(lastError ?? new AttemptTimedOut('no answer before the deadline'), n, true);
    try {
      return await raceAttempt(attempt(), deadline, policy.attemptTimeoutMs);
    } catch (err) {
      if (deadline.aborted) throw new RetriesExhausted(lastError ?? err, n + 1, true);
      if (!retryable(err)) throw err;
      lastError = err;
    }
    if (n + 1 < policy.maxAttempts) await pause(backoffDelay(policy, n), deadline);
  }
  throw new RetriesExhausted(lastError, policy.maxAttempts, deadline.aborted);
}
