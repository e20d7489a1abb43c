import type { AddressInfo } from 'node:net';
import { apiKeyAuth, requireScope } from '@keygate/express';
import express from 'express';
import { openBenchKeygate } from './keygate-runtime.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const runtime = await openBenchKeygate();
const app = express();
app.disable('x-powered-by');
app.use('/v1', apiKeyAuth({ keygate: runtime.keygate }));
app.get(ROUTE, requireScope('read:data', { resource: 'website:{websiteId}' }), (req, res) => {
  res.json(websiteAnalytics(req.params.websiteId as string));
});

const server = app.listen(portFromEnv(), '127.0.0.1', () =>
  announceReady((server.address() as AddressInfo).port, `keygate express (${runtime.description})`),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await runtime.close();
});
