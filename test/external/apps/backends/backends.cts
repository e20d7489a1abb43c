// The backends' `.d.cts` declarations from TypeScript compiled to CommonJS.
import { createKeygate, type Keygate } from '@keygate/core';
import { connectPostgres, type KeyDatabase } from '@keygate/postgres';
import { apiKeys } from '@keygate/postgres/schema';
import { createRedisBackends, type RedisBackends } from '@keygate/redis';
import { Redis } from 'ioredis';

export async function open(url: string, redisUrl: string): Promise<Keygate> {
  const database: KeyDatabase = await connectPostgres({ url, migrate: true });
  const redis: RedisBackends = createRedisBackends({ client: new Redis(redisUrl) });
  await database.db.select({ id: apiKeys.id }).from(apiKeys);
  return createKeygate({ store: database.store, limiter: redis.limiter });
}
