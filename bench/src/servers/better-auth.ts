import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createBenchAuth, readPermission } from '../peers/better-auth.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL is required');
const { auth, pool } = createBenchAuth(databaseUrl);

const app = new Hono();
app.get(ROUTE, async (c) => {
  const key = c.req.header('x-api-key');
  if (!key) return c.json({ success: false, error: 'API key required' }, 401);
  const websiteId = c.req.param('websiteId');
  const verdict = await auth.api.verifyApiKey({
    body: { key, permissions: readPermission(websiteId) },
  });
  if (!verdict.valid) {
    return c.json({ success: false, error: verdict.error?.message ?? 'Invalid API key' }, 401);
  }
  return c.json(websiteAnalytics(websiteId));
});

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, 'better-auth api-key (hono, postgres)'),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await pool.end();
});
