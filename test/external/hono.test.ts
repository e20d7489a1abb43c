import { describeFrameworks } from './frameworks.js';

describeFrameworks([
  {
    name: 'Hono 4',
    fixtures: 'hono',
    adapter: '@keygate/hono',
    specs: ['hono@4', '@hono/node-server@1'],
  },
]);
