import type { AddressInfo } from 'node:net';
import { type ApiKeyState, apiKeyAuth, requireScope } from '@keygate/koa';
import Router from '@koa/router';
import Koa from 'koa';
import { openBenchKeygate } from './keygate-runtime.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const runtime = await openBenchKeygate();
const app = new Koa<ApiKeyState>();
const router = new Router<ApiKeyState>();
router.get(ROUTE, requireScope('read:data', { resource: 'website:{websiteId}' }), (ctx) => {
  ctx.body = websiteAnalytics(ctx.params.websiteId!);
});
app.use(apiKeyAuth({ keygate: runtime.keygate }));
app.use(router.routes());

const server = app.listen(portFromEnv(), '127.0.0.1', () =>
  announceReady((server.address() as AddressInfo).port, `keygate koa (${runtime.description})`),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await runtime.close();
});
