import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { serveReferenceApp } from '@keygate/example-shared';
import { createApp } from './app.js';

await serveReferenceApp('hono', ({ keygate }, config) => {
  const app = createApp(keygate, config);
  // Without https or http2 options, the adaptor builds a plain node:http server.
  return createAdaptorServer({ fetch: app.fetch }) as Server;
});
