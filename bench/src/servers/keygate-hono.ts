import { serve } from '@hono/node-server';
import { apiKeyAuth, requireScope } from '@keygate/hono';
import { Hono } from 'hono';
import { openBenchKeygate } from './keygate-runtime.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const runtime = await openBenchKeygate();
const app = new Hono();
app.use('/v1/*', apiKeyAuth({ keygate: runtime.keygate }));
app.get(ROUTE, requireScope('read:data', { resource: 'website:{websiteId}' }), (c) =>
  c.json(websiteAnalytics(c.req.param('websiteId'))),
);

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, `keygate hono (${runtime.description})`),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await runtime.close();
});
