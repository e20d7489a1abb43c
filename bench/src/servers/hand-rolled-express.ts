import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { type RedisReply, RedisStore } from 'rate-limit-redis';
import { HAND_ROLLED_REDIS_PREFIX, HAND_ROLLED_TABLE } from '../peers/hand-rolled.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

/** What a team writes instead of keygate: a digest lookup per request, express-rate-limit on Redis, a scope check. */
interface KeyRow {
  id: string;
  scopes: string[];
  resources: string[] | null;
}

const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;
if (!databaseUrl || !redisUrl) throw new Error('DATABASE_URL and REDIS_URL are required');
const sql = postgres(databaseUrl, { max: 10 });
const redis = new Redis(redisUrl);

async function authenticate(req: Request, res: Response, next: NextFunction): Promise<void> {
  const key = req.get('x-api-key');
  if (!key) {
    res.status(401).json({ success: false, error: 'API key required' });
    return;
  }
  const digest = createHash('sha256').update(key).digest('hex');
  const [row] = await sql<KeyRow[]>`
    select id, scopes, resources from ${sql(HAND_ROLLED_TABLE)}
    where digest = ${digest} and revoked_at is null and (expires_at is null or expires_at > now())`;
  if (!row) {
    res.status(401).json({ success: false, error: 'Invalid API key' });
    return;
  }
  res.locals.key = row;
  next();
}

const limiter = rateLimit({
  windowMs: 60_000,
  limit: 1_000_000_000,
  standardHeaders: 'draft-8',
  legacyHeaders: false,
  keyGenerator: (_req, res) => (res.locals.key as KeyRow).id,
  store: new RedisStore({
    prefix: HAND_ROLLED_REDIS_PREFIX,
    sendCommand: (command: string, ...args: string[]) =>
      redis.call(command, ...args) as Promise<RedisReply>,
  }),
});

function requireRead(req: Request, res: Response, next: NextFunction): void {
  const key = res.locals.key as KeyRow;
  const resource = `website:${req.params.websiteId}`;
  if (!key.scopes.includes('read:data')) {
    res.status(403).json({ success: false, error: 'Insufficient scope' });
    return;
  }
  if (key.resources !== null && !key.resources.includes(resource)) {
    res.status(403).json({ success: false, error: 'Access denied' });
    return;
  }
  next();
}

const app = express();
app.disable('x-powered-by');
app.use('/v1', authenticate, limiter);
app.get(ROUTE, requireRead, (req, res) => {
  res.json(websiteAnalytics(req.params.websiteId as string));
});

const server = app.listen(portFromEnv(), '127.0.0.1', () =>
  announceReady((server.address() as AddressInfo).port, 'hand-rolled express'),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await sql.end({ timeout: 5 });
  redis.disconnect();
});
