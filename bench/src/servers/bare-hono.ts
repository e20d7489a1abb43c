import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const app = new Hono();
app.get(ROUTE, (c) => c.json(websiteAnalytics(c.req.param('websiteId'))));

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, 'bare hono'),
);
closeOnSignals(() => new Promise((resolve) => server.close(() => resolve())));
