/** Retry settings; tests replace `sleep` so nothing waits for real. */
export const retryPolicy = {
  baseDelayMs: 250,
  maxDelayMs: 20_000,
  maxAttempts: 10,
  sleep: (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms)),
};

const THROTTLING = new Set([
  'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'SlowDown',
  'RequestThrottled', 'RequestThrottledException', 'ProvisionedThroughputExceededException',
]);
const TRANSIENT = new Set(['InternalError', 'InternalServerException', 'ServiceUnavailable', 'RequestTimeout', 'TimeoutError']);

export function errorName(e: unknown): string {
  return (e as { name?: string } | undefined)?.name ?? '';
}

/** Throttling, 5xx and network-level failures. */
export function isTransient(e: unknown): boolean {
  const name = errorName(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  const code = (e as { code?: string } | undefined)?.code;
  return THROTTLING.has(name) || TRANSIENT.has(name) || status === 429 || (status !== undefined && status >= 500) ||
    code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT';
}

/** Delay before attempt `attempt + 1` (full jitter, exponential, capped). */
export function backoff(attempt: number): number {
  const cap = Math.min(retryPolicy.maxDelayMs, retryPolicy.baseDelayMs * 2 ** attempt);
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/** Runs `fn`, retrying while `retryable(error)` holds, up to retryPolicy.maxAttempts attempts. */
export async function withRetry<T>(
  what: string,
  fn: () => Promise<T>,
  retryable: (e: unknown) => boolean = isTransient,
  onRetry?: (line: string) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt + 1 >= retryPolicy.maxAttempts || !retryable(e)) throw e;
      const ms = backoff(attempt);
      onRetry?.(`${what}: ${errorName(e) || String(e)}, retry ${attempt + 1} in ${ms} ms`);
      await retryPolicy.sleep(ms);
    }
  }
}

/** Runs `tasks` with at most `limit` running at once; rejects with the first failure (after the running ones settle). */
export async function runBounded<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++];
      try {
        await task(item);
      } catch (e) {
        if (failure === undefined) failure = e ?? new Error('task failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure;
}
