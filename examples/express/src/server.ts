import { createServer } from 'node:http';
import { serveReferenceApp } from '@keygate/example-shared';
import { createApp } from './app.js';

await serveReferenceApp('express', ({ keygate, sessions }, config) =>
  createServer(createApp(keygate, { ...config, sessions })),
);
