import { defineConfig, type UserConfig } from 'tsdown';

/**
 * How every keygate package is built: ESM (`.mjs`) and CommonJS (`.cjs`) for Node 20 and later,
 * declarations for both (`.d.mts`, `.d.cts`), source maps. Only what the entries import is
 * bundled, so test files never reach `dist/`; dependencies and peers stay imports.
 */
export function packageBuild(options: UserConfig): UserConfig {
  return defineConfig({
    format: ['esm', 'cjs'],
    platform: 'node',
    target: 'node20',
    dts: true,
    sourcemap: true,
    // `import.meta.url` in the CommonJS build, for files shipped next to `dist/` (migrations).
    shims: true,
    // Declarations take most of a build; rolldown's report of that says nothing actionable.
    checks: { pluginTimings: false },
    ...options,
  });
}
