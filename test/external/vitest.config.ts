import { defineConfig } from 'vitest/config';

/**
 * The external suite (`pnpm test:external`, after `pnpm build`): the packed packages installed
 * with npm into throwaway projects outside the repository, as a user would.
 */
export default defineConfig({
  test: {
    root: new URL('.', import.meta.url).pathname,
    include: ['*.test.ts'],
    globalSetup: ['../setup/global.ts', './setup.ts'],
    // npm installs and TypeScript runs on a shared two-core machine: bounds are generous.
    testTimeout: 180_000,
    hookTimeout: 300_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
