// Bundles the key-management page into ui/dist: hashed script and stylesheet, and manifest.json
// naming them for the server (src/dashboard.ts). Run at package build time and on install.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ui = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(ui, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: [path.join(ui, 'src/main.tsx')],
  outdir: path.join(dist, 'assets'),
  entryNames: '[name].[hash]',
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
const script = outputs.find((file) => file.endsWith('.js'));
const style = outputs.find((file) => file.endsWith('.css'));
if (!script || !style) throw new Error(`ui build produced ${outputs.join(', ')}`);
await writeFile(path.join(dist, 'manifest.json'), `${JSON.stringify({ script, style })}\n`);
