import { createServer } from 'node:http';
import { serveReferenceApp } from '@keygate/example-shared';
import { createApp } from './app.js';

await serveReferenceApp('koa', ({ keygate, sessions }, config) =>
  createServer(createApp(keygate, { ...config, sessions }).callback()),
);
