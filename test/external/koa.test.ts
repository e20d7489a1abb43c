import { describeFrameworks } from './frameworks.js';

describeFrameworks([
  { name: 'Koa 2', fixtures: 'koa', adapter: '@keygate/koa', specs: ['koa@2', '@types/koa@2'] },
  { name: 'Koa 3', fixtures: 'koa', adapter: '@keygate/koa', specs: ['koa@3', '@types/koa@3'] },
]);
