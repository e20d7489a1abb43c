import { packageBuild } from '../../tsdown.base.js';

export default packageBuild({
  entry: ['src/index.ts', 'src/hono.ts', 'src/express.ts', 'src/koa.ts'],
  // The page's code goes into the main entry, which the framework entries import.
  inputOptions: { preserveEntrySignatures: 'allow-extension' },
});
