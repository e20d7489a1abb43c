import type { AddressInfo } from 'node:net';
import express from 'express';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const app = express();
app.disable('x-powered-by');
app.get(ROUTE, (req, res) => {
  res.json(websiteAnalytics(req.params.websiteId as string));
});

const server = app.listen(portFromEnv(), '127.0.0.1', () =>
  announceReady((server.address() as AddressInfo).port, 'bare express'),
);
closeOnSignals(() => new Promise((resolve) => server.close(() => resolve())));
