import { packageBuild } from '../../tsdown.base.js';

export default packageBuild({ entry: ['src/index.ts', 'src/schema.ts'] });
