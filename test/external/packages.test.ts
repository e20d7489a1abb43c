/**
 * SPEC §9: each packed tarball, exactly as it would be published, ships what a user needs and
 * nothing of the repository's, and passes publint (package.json against the files it ships) and
 * Are the Types Wrong (types for `require` and `import` under every TypeScript resolution mode).
 */
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { ROOT, run } from './support.js';

const { tarballs } = inject('external');
const bin = (name: string) => path.join(ROOT, 'node_modules/.bin', name);

describe.each(Object.keys(tarballs).sort())('%s', (name) => {
  const tarball = tarballs[name]!;

  it('ships the builds, both declarations, LICENSE, README and CHANGELOG; no test, no source', async () => {
    const listing = await run('tar', ['tzf', tarball], { cwd: ROOT });
    const files = listing.stdout
      .trim()
      .split('\n')
      .map((file) => file.replace(/^package\//, ''));
    for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json']) {
      expect(files).toContain(file);
    }
    for (const extension of ['.mjs', '.cjs', '.d.mts', '.d.cts', '.mjs.map', '.cjs.map']) {
      expect(files).toContain(`dist/index${extension}`);
    }
    if (name === '@keygate/dashboard') {
      // An entry per framework, and the page's assets built into the code: no file beside it.
      for (const entry of ['hono', 'express', 'koa']) {
        for (const extension of ['.mjs', '.cjs', '.d.mts', '.d.cts']) {
          expect(files).toContain(`dist/${entry}${extension}`);
        }
      }
      for (const build of ['dist/index.mjs', 'dist/index.cjs']) {
        const code = await run('tar', ['-xzOf', tarball, `package/${build}`], { cwd: ROOT });
        expect(code.stdout).toContain('main.');
        expect(code.stdout).not.toMatch(/["']node:|readFile|fileURLToPath|import\.meta/);
      }
    }
    // Nothing is read from the package's folder at run time: no page assets ship beside the code.
    expect(files.filter((file) => file.startsWith('ui/'))).toEqual([]);
    expect(
      files.filter((file) => /\.test\.|^src\/|\.ts$/.test(file.replace(/\.d\.[mc]ts$/, ''))),
    ).toEqual([]);
  });

  it('publint finds nothing to report, not even a suggestion', async () => {
    const result = await run(bin('publint'), ['run', tarball, '--strict'], { cwd: ROOT });
    expect(result.stderr).toBe('');
    expect(result.stdout).not.toMatch(/Suggestions|Warnings|Errors/);
    expect(result.code).toBe(0);
  });

  it('attw finds no problem in any resolution mode', async () => {
    const result = await run(bin('attw'), [tarball, '--format', 'ascii'], { cwd: ROOT });
    expect(result.stdout).toContain('No problems found');
    expect(result.code).toBe(0);
  });
});
