import '@keygate/example-shared';
import { createKeygate, type Keygate } from '@keygate/core';
import { openKeyDatabase } from '@keygate/postgres';
import { createRedisBackends } from '@keygate/redis';

/** Redis keys and the invalidation channel live under this namespace, apart from other users of the server. */
export const BENCH_REDIS_NAMESPACE = 'keygate-bench';

export interface BenchKeygate {
  keygate: Keygate;
  description: string;
  close(): Promise<void>;
}

/**
 * keygate wired from the environment as the reference app does (`examples/shared` `openRuntime`):
 * Postgres when `DATABASE_URL` is set, else the embedded PGlite under `KEYGATE_DATA_DIR`; Redis
 * when `REDIS_URL` is set, else in-process limits. Keys, audit trail and limits are all on.
 * Migrations are applied by the orchestrator beforehand, as `keygate migrate` is on deploy.
 * `KEYGATE_BENCH_AUDIT=off` drops the audit trail, for the diagnostic run that prices it;
 * `KEYGATE_BENCH_LIMITS=leased` shares limits through Redis in leases instead of exactly.
 */
export async function openBenchKeygate(
  env: NodeJS.ProcessEnv = process.env,
): Promise<BenchKeygate> {
  const databaseUrl = env.DATABASE_URL || undefined;
  const redisUrl = env.REDIS_URL || undefined;
  const database = await openKeyDatabase({
    databaseUrl,
    dataDir: env.KEYGATE_DATA_DIR,
    migrate: false,
  });
  const leased = env.KEYGATE_BENCH_LIMITS === 'leased';
  const redis = redisUrl
    ? createRedisBackends({
        url: redisUrl,
        namespace: BENCH_REDIS_NAMESPACE,
        limits: leased ? 'leased' : 'exact',
      })
    : null;
  const keygate = createKeygate({
    store: database.store,
    auditSinks: env.KEYGATE_BENCH_AUDIT === 'off' ? [] : [database.auditSink],
    ...(redis
      ? {
          limiter: redis.limiter,
          authFailureGuard: redis.failureGuard,
          invalidation: redis.invalidation,
        }
      : {}),
  });
  return {
    keygate,
    description: [
      databaseUrl ? 'postgres' : 'pglite',
      redisUrl ? (leased ? 'redis (leased limits)' : 'redis') : 'memory',
      ...(env.KEYGATE_BENCH_AUDIT === 'off' ? ['no audit trail'] : []),
    ].join(' + '),
    async close() {
      await keygate.close();
      await redis?.close();
      await database.close();
    },
  };
}
