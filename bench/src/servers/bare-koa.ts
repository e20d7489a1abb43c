import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const app = new Koa();
const router = new Router();
router.get(ROUTE, (ctx) => {
  ctx.body = websiteAnalytics(ctx.params.websiteId!);
});
app.use(router.routes());

const server = app.listen(portFromEnv(), '127.0.0.1', () =>
  announceReady((server.address() as AddressInfo).port, 'bare koa'),
);
closeOnSignals(() => new Promise((resolve) => server.close(() => resolve())));
