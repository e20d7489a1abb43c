import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';

/**
 * Node can run neither the workspace packages (TypeScript sources) nor the entry points as they
 * are, and a TypeScript loader inside a measured process would cost memory and CPU a deployed
 * app does not pay. So each server and the load generator are bundled once into plain ESM; the
 * workspace packages are inlined and every third-party package stays an import of its installed
 * file.
 */
const thirdPartyExternal: Plugin = {
  name: 'third-party-external',
  setup(builder) {
    builder.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith('@keygate/') || args.path.startsWith('node:')) return undefined;
      if (args.pluginData === 'resolving') return undefined;
      const resolved = await builder.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: 'resolving',
      });
      if (resolved.errors.length > 0) return undefined;
      return { path: resolved.path, external: resolved.path !== '' };
    });
  },
};

/** Entry points under `src/servers` that are helpers, not servers. */
const SERVER_HELPERS = new Set(['workload.ts', 'keygate-runtime.ts']);

export async function bundle(
  srcDir: string,
  outDir: string,
): Promise<{ servers: Map<string, string>; load: string }> {
  const serverFiles = readdirSync(join(srcDir, 'servers')).filter(
    (file) => file.endsWith('.ts') && !SERVER_HELPERS.has(file),
  );
  await build({
    entryPoints: [
      ...serverFiles.map((file) => join(srcDir, 'servers', file)),
      join(srcDir, 'load.ts'),
    ],
    outbase: srcDir,
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    plugins: [thirdPartyExternal],
  });
  const servers = new Map(
    serverFiles.map((file) => {
      const name = file.replace(/\.ts$/, '');
      return [name, join(outDir, 'servers', `${name}.mjs`)];
    }),
  );
  return { servers, load: join(outDir, 'load.mjs') };
}
