import { KeygateError, withTimeout } from '@keygate/core';

/**
 * A key-store or audit-trail call that failed (unreachable database, timeout, constraint).
 * The message names the operation and the driver's reason, never the query's parameters.
 */
export class PostgresStoreError extends Error {
  /** SQLSTATE (e.g. `23505`), network error code (e.g. `ECONNREFUSED`), or `QUERY_TIMEOUT`. */
  readonly code: string | undefined;
  /**
   * Whether the database is down or out of reach (a timeout, a lost or refused connection, a
   * server shutting down or out of resources) rather than refusing this statement: keygate's
   * circuit breakers stop calling it until it answers again.
   */
  readonly unavailable: boolean;

  constructor(operation: string, error: unknown) {
    // Drizzle's wrapper prints every parameter of the query; report the driver's error instead.
    const cause = isDrizzleQueryError(error) && error.cause ? error.cause : error;
    super(`[keygate:postgres] ${operation} failed: ${describe(cause)}`, { cause });
    this.name = 'PostgresStoreError';
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : undefined;
    this.unavailable = isOutageCode(this.code);
  }
}

/**
 * SQLSTATE classes of a server that cannot serve: 08 connection exception, 53 insufficient
 * resources, 57 operator intervention (shutdown, statement timeout), 58 system error. A code that
 * is no SQLSTATE is the driver's or the network's (`ECONNREFUSED`, `CONNECT_TIMEOUT`), and an error
 * without a code is not understood: both count as the database being unreachable.
 */
function isOutageCode(code: string | undefined): boolean {
  // `EPIPE` has a SQLSTATE's shape; no SQLSTATE class starts with E.
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('E')) return true;
  return /^(08|53|57|58)/.test(code);
}

/**
 * drizzle's `DrizzleQueryError`, recognised by shape rather than `instanceof`: the app's drizzle
 * (CommonJS or ESM, another version) may be a different copy from the one this package loads.
 */
function isDrizzleQueryError(error: unknown): error is Error & { cause?: unknown } {
  return (
    error instanceof Error &&
    typeof (error as { query?: unknown }).query === 'string' &&
    Array.isArray((error as { params?: unknown }).params)
  );
}

/** Default for `timeoutMs`: past the 5 s connect and statement timeouts of `connectPostgres`. */
export const DEFAULT_CALL_TIMEOUT_MS = 6000;

export interface PostgresStoreOptions {
  /** Longest a call waits for the database before it rejects, in ms. Default `6000`. */
  timeoutMs?: number;
}

/**
 * Whether the database refused a value for what it is rather than failing: a data exception
 * (SQLSTATE class 22: a NUL byte, an impossible date, bad JSON text) or a value over one of its
 * limits (54000). The request carried it, so the caller hears 400, not 503.
 */
function isRefusedValue(error: PostgresStoreError): boolean {
  return error.code !== undefined && (error.code.startsWith('22') || error.code === '54000');
}

/**
 * Runs one database call, turning any failure into a `PostgresStoreError`, or a refused value
 * into a `KeygateError` (`INVALID_REQUEST`) caused by one. The deadline covers what server-side
 * timeouts cannot: a connection that stopped answering (a network partition).
 */
export function attempt<T>(
  operation: string,
  timeoutMs: number,
  call: () => PromiseLike<T>,
): Promise<T> {
  let answer: Promise<T>;
  try {
    answer = withTimeout(call(), timeoutMs, () => new CallTimeout(timeoutMs));
  } catch (error) {
    answer = Promise.reject(error);
  }
  // Chained rather than awaited: the cold path's lookup costs one promise fewer.
  return answer.catch((error: unknown) => {
    const failure = new PostgresStoreError(operation, error);
    if (isRefusedValue(failure)) {
      throw new KeygateError('INVALID_REQUEST', {
        message: 'the database cannot store a value of this request',
        cause: failure,
      });
    }
    throw failure;
  });
}

class CallTimeout extends Error {
  readonly code = 'QUERY_TIMEOUT';
  constructor(timeoutMs: number) {
    super(`no answer from the database within ${timeoutMs} ms`);
    this.name = 'CallTimeout';
  }
}

function describe(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const code = (cause as { code?: unknown }).code;
  return cause.message || (typeof code === 'string' ? code : cause.name);
}
