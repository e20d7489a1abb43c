import { describeFrameworks } from './frameworks.js';

describeFrameworks([
  {
    name: 'Express 4',
    fixtures: 'express',
    adapter: '@keygate/express',
    specs: ['express@4', '@types/express@4'],
  },
  {
    name: 'Express 5',
    fixtures: 'express',
    adapter: '@keygate/express',
    specs: ['express@5', '@types/express@5'],
  },
]);
