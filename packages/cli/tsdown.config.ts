import { packageBuild } from '../../tsdown.base.js';

export default [
  packageBuild({ entry: ['src/index.ts'] }),
  // The executable: ESM only (top-level await), keeping its `#!/usr/bin/env node` line.
  packageBuild({ entry: ['src/bin.ts'], format: ['esm'], dts: false, clean: false }),
];
