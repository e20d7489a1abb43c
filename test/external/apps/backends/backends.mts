// The backends' declarations from TypeScript (ESM), with `nodenext` and `bundler` resolution.
import { createKeygate, type Keygate } from '@keygate/core';
import {
  connectPostgres,
  type KeyDatabase,
  type KeygateDatabase,
  migrate,
  PostgresKeyStore,
} from '@keygate/postgres';
import { apiKeys, auditEvents } from '@keygate/postgres/schema';
import { createRedisBackends, type RedisBackends } from '@keygate/redis';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { Redis } from 'ioredis';
import postgres from 'postgres';

export async function open(url: string, redisUrl: string): Promise<Keygate> {
  const database: KeyDatabase = await connectPostgres({ url, migrate: true });
  const redis: RedisBackends = createRedisBackends({ client: new Redis(redisUrl) });
  return createKeygate({
    store: database.store,
    auditSinks: [database.auditSink],
    limiter: redis.limiter,
    authFailureGuard: redis.failureGuard,
    invalidation: redis.invalidation,
  });
}

export async function withOwnDrizzle(url: string): Promise<string[]> {
  const db: KeygateDatabase = drizzle(postgres(url));
  await migrate(db);
  const store = new PostgresKeyStore(db);
  createKeygate({ store, auditSinks: [store.auditSink] });
  const rows = await db.select().from(apiKeys).where(eq(apiKeys.ownerId, 'org_1'));
  await db.select({ id: auditEvents.id }).from(auditEvents);
  return rows.map((row) => row.id);
}
