import { packageBuild } from '../../tsdown.base.js';

export default packageBuild({
  entry: ['src/index.ts', 'src/hono.ts', 'src/express.ts', 'src/koa.ts'],
});
