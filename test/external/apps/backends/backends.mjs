// @keygate/postgres and @keygate/redis from ESM: migrations found from the ESM build, a key stored
// in Postgres and verified, limits on the app's own ioredis client.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKeygate } from '@keygate/core';
import { connectPostgres, migrationsFolder, openEmbedded } from '@keygate/postgres';
import { apiKeys } from '@keygate/postgres/schema';
import { createRedisBackends } from '@keygate/redis';
import { Redis } from 'ioredis';

const database = await connectPostgres({ url: process.env.DATABASE_URL, migrate: true });
const client = new Redis(process.env.REDIS_URL);
await once(client, 'ready');
const redis = createRedisBackends({ client, namespace: process.env.REDIS_NAMESPACE });
const keygate = createKeygate({
  store: database.store,
  auditSinks: [database.auditSink],
  limiter: redis.limiter,
});
const { key, secret } = await keygate.keys.create({ name: 'esm', scopes: ['read:data'] });
const decision = await keygate.authenticate({
  method: 'GET',
  url: '/v1/data',
  headers: new Headers({ 'x-api-key': secret }),
  ip: '127.0.0.1',
});
const rows = await database.db.select().from(apiKeys);
const embedded = await openEmbedded({
  dataDir: fileURLToPath(new URL('.keygate', import.meta.url)),
}).then(
  () => 'opened',
  (error) => `${error.code}: ${error.message}`,
);
console.log(
  JSON.stringify({
    migrations: existsSync(join(migrationsFolder, 'meta', '_journal.json')),
    stored: rows.map((row) => row.id),
    keyId: key.id,
    authenticated: decision.ok ? decision.principal.id : decision.error.code,
    rateLimitLimit: decision.headers['X-RateLimit-Limit'],
    embedded,
  }),
);
await keygate.close();
await redis.close();
await client.quit();
await database.close();
