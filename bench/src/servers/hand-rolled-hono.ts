import { createHash } from 'node:crypto';
import { serve } from '@hono/node-server';
import { Hono, type MiddlewareHandler } from 'hono';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import postgres from 'postgres';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { HAND_ROLLED_RLF_PREFIX, HAND_ROLLED_TABLE } from '../peers/hand-rolled.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

/**
 * What a platform team writes in an afternoon on Hono: SHA-256 of the key, an LRU cache of
 * verified keys, one Postgres lookup on a miss, rate-limiter-flexible on Redis (one round trip),
 * a scope and resource check.
 */
interface KeyRow {
  id: string;
  scopes: string[];
  resources: string[] | null;
}

type Env = { Variables: { key: KeyRow } };

const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;
if (!databaseUrl || !redisUrl) throw new Error('DATABASE_URL and REDIS_URL are required');
const sql = postgres(databaseUrl, { max: 10 });
const redis = new Redis(redisUrl);
// The same bounds as keygate's verification cache: 10,000 keys for 30 s.
const cache = new LRUCache<string, KeyRow>({ max: 10_000, ttl: 30_000 });
const LIMIT = 1_000_000_000;
const limiter = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: HAND_ROLLED_RLF_PREFIX,
  points: LIMIT,
  duration: 60,
});

const authenticate: MiddlewareHandler<Env> = async (c, next) => {
  const key = c.req.header('x-api-key');
  if (!key) return c.json({ success: false, error: 'API key required' }, 401);
  const digest = createHash('sha256').update(key).digest('hex');
  let row = cache.get(digest);
  if (!row) {
    [row] = await sql<KeyRow[]>`
      select id, scopes, resources from ${sql(HAND_ROLLED_TABLE)}
      where digest = ${digest} and revoked_at is null and (expires_at is null or expires_at > now())`;
    if (!row) return c.json({ success: false, error: 'Invalid API key' }, 401);
    cache.set(digest, row);
  }
  let limited: RateLimiterRes;
  try {
    limited = await limiter.consume(row.id);
  } catch (error) {
    if (!(error instanceof RateLimiterRes)) throw error;
    c.header('Retry-After', String(Math.ceil(error.msBeforeNext / 1000)));
    return c.json({ success: false, error: 'Rate limit exceeded' }, 429);
  }
  c.header('X-RateLimit-Limit', String(LIMIT));
  c.header('X-RateLimit-Remaining', String(limited.remainingPoints));
  c.header('X-RateLimit-Reset', String(Math.ceil((Date.now() + limited.msBeforeNext) / 1000)));
  c.set('key', row);
  await next();
};

const requireRead: MiddlewareHandler<Env> = async (c, next) => {
  const key = c.get('key');
  if (!key.scopes.includes('read:data')) {
    return c.json({ success: false, error: 'Insufficient scope' }, 403);
  }
  const resource = `website:${c.req.param('websiteId')}`;
  if (key.resources !== null && !key.resources.includes(resource)) {
    return c.json({ success: false, error: 'Access denied' }, 403);
  }
  await next();
};

const app = new Hono<Env>();
app.use('/v1/*', authenticate);
app.get(ROUTE, requireRead, (c) => c.json(websiteAnalytics(c.req.param('websiteId'))));

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, 'hand-rolled hono'),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await sql.end({ timeout: 5 });
  redis.disconnect();
});
