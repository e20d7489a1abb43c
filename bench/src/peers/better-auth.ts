import { apiKey } from '@better-auth/api-key';
import { betterAuth } from 'better-auth';
import pg from 'pg';

/** The permission a key needs for `GET /v1/websites/:websiteId/analytics`, as keygate's `read:data` on `website:<id>`. */
export function readPermission(websiteId: string): Record<string, string[]> {
  return { [`website:${websiteId}`]: ['read:data'] };
}

/**
 * better-auth with its API-key plugin on Postgres (`pg` pool, as its docs show). The plugin's own
 * per-key rate limit stays on, with limits far above what the benchmark sends.
 */
export function createBenchAuth(databaseUrl: string) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const auth = betterAuth({
    database: pool,
    baseURL: 'http://127.0.0.1',
    secret: 'keygate-bench-better-auth-secret-0123456789',
    telemetry: { enabled: false },
    logger: { disabled: true },
    // Only for the one user the benchmark's keys belong to.
    emailAndPassword: { enabled: true },
    plugins: [
      apiKey({
        rateLimit: { enabled: true, timeWindow: 60_000, maxRequests: 1_000_000_000 },
      }),
    ],
  });
  return { auth, pool };
}

export type BenchAuth = ReturnType<typeof createBenchAuth>['auth'];
