// Bundles the key-management page into ui/dist/assets.js: a module holding the hashed script and
// stylesheet as text, which the server (src/dashboard.ts) imports and tsdown builds into the
// package, so serving the page reads no file at run time. Run at package build time and on install.
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
  write: false,
  logLevel: 'warning',
});
const files = Object.fromEntries(
  result.outputFiles.map((file) => [path.basename(file.path), file.text]),
);
const names = Object.keys(files);
const script = names.find((name) => name.endsWith('.js'));
const style = names.find((name) => name.endsWith('.css'));
if (!script || !style || names.length !== 2)
  throw new Error(`ui build produced ${names.join(', ')}`);
await writeFile(
  path.join(dist, 'assets.js'),
  [
    "// Built by ui/build.mjs: the page's script and stylesheet, named by their content hash.",
    `export const script = ${JSON.stringify(script)};`,
    `export const style = ${JSON.stringify(style)};`,
    `export const files = ${JSON.stringify(files)};`,
    '',
  ].join('\n'),
);
await writeFile(
  path.join(dist, 'assets.d.ts'),
  [
    "/** The script's file name (`main.<hash>.js`). */",
    'export declare const script: string;',
    "/** The stylesheet's file name (`main.<hash>.css`). */",
    'export declare const style: string;',
    "/** Each file's text by name. */",
    'export declare const files: Readonly<Record<string, string>>;',
    '',
  ].join('\n'),
);
