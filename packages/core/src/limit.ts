import { KeygateError } from './errors.js';
import type { OutageLog } from './outage-log.js';
import { rateLimitHeaders } from './rate-limit.js';
import { isPending } from './timeout.js';
import type { Headers, RateLimiter, RateLimitPolicy, RateLimitResult } from './types.js';

/** What the limit step decided: the rate-limit headers, and the error when the request is refused. */
export interface Limited {
  headers: Headers;
  error: KeygateError | null;
}

const UNLIMITED: Limited = { headers: {}, error: null };
const UNAVAILABLE_HEADERS: Headers = { 'Retry-After': '1' };

/**
 * The limit step: charges the request to `subject` against all of its policies at once.
 * `RATE_LIMITED` (429, with `Retry-After`) when one is exhausted; `SERVICE_UNAVAILABLE` (503) when
 * the limiter cannot answer, its outage logged. No limiter: no limit and no headers. Answers at
 * once when the limiter does.
 */
export function limitRequest(
  limiter: RateLimiter | null,
  subject: string,
  policies: readonly RateLimitPolicy[],
  policyHeader: string | undefined,
  outage: OutageLog,
): Limited | Promise<Limited> {
  if (!limiter) return UNLIMITED;
  let answer: RateLimitResult | PromiseLike<RateLimitResult>;
  try {
    answer = limiter.consume(subject, policies);
  } catch (error) {
    return unavailable(outage, error);
  }
  // Chained rather than awaited: one promise fewer on every request.
  if (!isPending(answer)) return settled(answer, policyHeader);
  return Promise.resolve(answer).then(
    (result) => settled(result, policyHeader),
    (error: unknown) => unavailable(outage, error),
  );
}

function settled(result: RateLimitResult, policyHeader: string | undefined): Limited {
  return {
    headers: rateLimitHeaders(result, Date.now(), policyHeader),
    error: result.allowed ? null : new KeygateError('RATE_LIMITED', { reason: 'rate_limited' }),
  };
}

function unavailable(outage: OutageLog, error: unknown): Limited {
  outage.warn('rate limiter unavailable', error);
  return {
    headers: UNAVAILABLE_HEADERS,
    error: new KeygateError('SERVICE_UNAVAILABLE', { reason: 'limiter_unavailable' }),
  };
}
