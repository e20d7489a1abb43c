import { packageBuild } from '../../tsdown.base.js';

export default packageBuild({ entry: ['src/index.ts', 'src/node.ts'] });
