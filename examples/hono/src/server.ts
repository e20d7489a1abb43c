import { serve } from '@hono/node-server';
import {
  bootstrapMessage,
  closeOnSignals,
  openRuntime,
  portFrom,
  trustProxyFrom,
} from '@keygate/example-shared';
import { createApp } from './app.js';

const port = portFrom();
const host = process.env.HOST ?? '127.0.0.1';
const runtime = await openRuntime();
const app = createApp(runtime.keygate, { trustProxy: trustProxyFrom() });

function announce(actualPort: number): void {
  const url = `http://localhost:${actualPort}`;
  console.log(`keygate reference app (hono) listening on ${url} (${runtime.description})`);
  if (runtime.bootstrap) console.log(bootstrapMessage(runtime.bootstrap, url));
}

const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => announce(info.port));
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await runtime.close();
});
