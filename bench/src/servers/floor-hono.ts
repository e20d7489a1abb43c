import * as nodeCrypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serve } from '@hono/node-server';
import { Hono, type MiddlewareHandler } from 'hono';
import postgres from 'postgres';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

/**
 * The floor: the least an API-key layer can do per request on Hono, with nothing a user could
 * notice missing from the response. Keys are read from keygate's table once at start-up; a request
 * costs the key header read from Node's request, its SHA-256, a `Map` lookup, a token taken from
 * an in-memory counter and a use counted, the same five rate-limit headers as keygate's set on
 * Node's response, and a scope and resource check in a route middleware, as `requireScope` is.
 * No audit trail, no Redis, no checksum, no cache to expire, no restrictions, no rotation. Each
 * request is answered as soon as it is read, as most middleware does; keygate answers the requests
 * of one event-loop turn together (`withTurn`), which the difference between the two rows prices.
 */
interface FloorKey {
  id: string;
  scopes: string[];
  resources: string[] | null;
  tokens: number;
  uses: number;
}

type NodeEnv = { Bindings: { incoming: IncomingMessage; outgoing: ServerResponse } };
type Env = NodeEnv & { Variables: { floorKey: FloorKey } };

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL is required');
const sql = postgres(databaseUrl, { max: 1 });
const rows = await sql<
  Array<{ id: string; digest: string; scopes: string[]; resources: string[] | null }>
>`
  select id, digest, scopes, resources from keygate_api_keys where revoked_at is null`;
await sql.end();

const CAPACITY = 1_000_000_000;
const keys = new Map<string, FloorKey>();
for (const row of rows) keys.set(row.digest, { ...row, tokens: CAPACITY, uses: 0 });
const sha256 = (nodeCrypto as Partial<typeof nodeCrypto>).hash;
if (!sha256) throw new Error('the floor needs crypto.hash (Node 20.12 or later)');

const authenticate: MiddlewareHandler<Env> = (c, next) => {
  const secret = c.env.incoming.headers['x-api-key'];
  const key = typeof secret === 'string' ? keys.get(sha256('sha256', secret, 'hex')) : undefined;
  if (!key) return Promise.resolve(c.json({ success: false, error: 'Invalid API key' }, 401));
  if (key.tokens < 1)
    return Promise.resolve(c.json({ success: false, error: 'Rate limited' }, 429));
  key.tokens--;
  key.uses++;
  const out = c.env.outgoing;
  const reset = Math.ceil(Date.now() / 1000) + 60;
  out.setHeader('X-RateLimit-Limit', String(CAPACITY));
  out.setHeader('X-RateLimit-Remaining', String(key.tokens));
  out.setHeader('X-RateLimit-Reset', String(reset));
  out.setHeader('RateLimit-Policy', `"burst";q=${CAPACITY};w=60`);
  out.setHeader('RateLimit', `"burst";r=${key.tokens};t=60`);
  c.set('floorKey', key);
  return next();
};

const requireRead: MiddlewareHandler<Env> = (c, next) => {
  const key = c.get('floorKey');
  const resource = `website:${c.req.param('websiteId')}`;
  if (!key.scopes.includes('read:data') || (key.resources && !key.resources.includes(resource))) {
    return Promise.resolve(c.json({ success: false, error: 'Forbidden' }, 403));
  }
  return next();
};

const app = new Hono<Env>();
app.use('/v1/*', authenticate);
app.get(ROUTE, requireRead, (c) => c.json(websiteAnalytics(c.req.param('websiteId'))));

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, `floor hono (${keys.size} keys in memory)`),
);
closeOnSignals(() => new Promise((resolve) => server.close(() => resolve())));
