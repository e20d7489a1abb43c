// @keygate/postgres and @keygate/redis from CommonJS: migrations found from the CommonJS build,
// a key stored in Postgres and verified, limits on the app's own ioredis client.
const { once } = require('node:events');
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { createKeygate } = require('@keygate/core');
const { connectPostgres, migrationsFolder, openEmbedded } = require('@keygate/postgres');
const { apiKeys } = require('@keygate/postgres/schema');
const { createRedisBackends } = require('@keygate/redis');
const { Redis } = require('ioredis');

async function main() {
  const database = await connectPostgres({ url: process.env.DATABASE_URL, migrate: true });
  const client = new Redis(process.env.REDIS_URL);
  await once(client, 'ready');
  const redis = createRedisBackends({ client, namespace: process.env.REDIS_NAMESPACE });
  const keygate = createKeygate({
    store: database.store,
    auditSinks: [database.auditSink],
    limiter: redis.limiter,
  });
  const { key, secret } = await keygate.keys.create({ name: 'cjs', scopes: ['read:data'] });
  const decision = await keygate.authenticate({
    method: 'GET',
    url: '/v1/data',
    headers: new Headers({ 'x-api-key': secret }),
    ip: '127.0.0.1',
  });
  const rows = await database.db.select().from(apiKeys);
  const embedded = await openEmbedded({ dataDir: join(__dirname, '.keygate') }).then(
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
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
