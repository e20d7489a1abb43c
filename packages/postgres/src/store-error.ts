import { DrizzleQueryError } from 'drizzle-orm';

/**
 * A key-store or audit-trail query that failed (unreachable database, timeout, constraint).
 * The message names the operation and the driver's reason, never the query's parameters.
 */
export class PostgresStoreError extends Error {
  /** SQLSTATE (e.g. `23505`) or network error code (e.g. `ECONNREFUSED`), when the driver gave one. */
  readonly code: string | undefined;

  constructor(operation: string, error: unknown) {
    // Drizzle's wrapper prints every parameter of the query; report the driver's error instead.
    const cause = error instanceof DrizzleQueryError && error.cause ? error.cause : error;
    super(`[keygate:postgres] ${operation} failed: ${describe(cause)}`, { cause });
    this.name = 'PostgresStoreError';
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** Runs one database call, turning any failure into a `PostgresStoreError`. */
export async function attempt<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new PostgresStoreError(operation, error);
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) return cause.message || cause.name;
  return String(cause);
}
