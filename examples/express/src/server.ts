import { createServer } from 'node:http';
import { serveReferenceApp } from '@keygate/example-shared';
import { createApp } from './app.js';

await serveReferenceApp('express', ({ keygate }, config) =>
  createServer(createApp(keygate, config)),
);
