/**
 * SPEC §8–9 outside the repository: the `keygate` CLI installed with npm and run as `npx keygate`
 * on every Node.js line, against its own Postgres database; and `@keygate/postgres` and
 * `@keygate/redis` used from CommonJS and ESM with the app's own clients.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { connectSharedRedis, deleteKeys, SHARED_REDIS_URL, uniqueName } from '../support/redis.js';
import { cleanEnv, createProject, run, TSCONFIGS, typeCheck } from './support.js';

const { dir, tarballs, nodes } = inject('external');

let project: string;
beforeAll(async () => {
  project = await createProject(path.join(dir, 'cli'), 'backends', [
    ...['@keygate/core', '@keygate/postgres', '@keygate/redis', 'keygate'].map((name) => {
      const tarball = tarballs[name];
      if (!tarball) throw new Error(`no tarball for ${name}`);
      return tarball;
    }),
    // What an app using the backends has installed itself: their peers.
    ...['drizzle-orm@^0.45', 'postgres@3', 'ioredis@5', '@types/node@20'],
  ]);
});

const databases: TestDatabase[] = [];
afterEach(async () => {
  await Promise.all(databases.splice(0).map((database) => database.close()));
});

/** An empty database of its own, dropped after the test. */
async function emptyDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase({ migrate: false });
  databases.push(database);
  return database;
}

describe('@keygate/postgres and @keygate/redis declarations', () => {
  // skipLibCheck on, unlike the adapters' apps: drizzle-orm 0.45's own declarations do not
  // compile without it (they import the types of drivers not installed, such as gel and mysql2),
  // so every drizzle user has it on. Our declarations are still what the code is checked against.
  it.each(Object.entries(TSCONFIGS))('TypeScript, %s: no error', async (_, config) => {
    const result = await typeCheck(project, config, ['--skipLibCheck']);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});

describe.each(nodes)('on Node $major', (node) => {
  /** The environment of a shell whose `node` is this one, so `npx` and the bin's shebang use it. */
  const env = (extra: NodeJS.ProcessEnv = {}) =>
    cleanEnv({
      PATH: `${path.dirname(node.path)}${path.delimiter}${process.env.PATH}`,
      DATABASE_URL: '',
      REDIS_URL: '',
      ...extra,
    });
  const keygate = (args: string[], extra?: NodeJS.ProcessEnv) =>
    run(path.join(project, 'node_modules/.bin/keygate'), args, { cwd: project, env: env(extra) });

  it('npx keygate: --help, --version, a command’s --help; options of another command refused', async () => {
    const shell = await run('node', ['--version'], { cwd: project, env: env() });
    expect(shell.stdout).toMatch(new RegExp(`^v${node.major}\\.`));

    const help = await run('npx', ['keygate', '--help'], { cwd: project, env: env() });
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('keygate keys create --name N --scopes a,b');
    expect(help.stdout).toContain('keygate migrate');

    expect(await keygate(['--version'])).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    const createHelp = await keygate(['keys', 'create', '--help']);
    expect(createHelp).toMatchObject({ code: 0, stderr: '' });
    expect(createHelp.stdout).toContain('--allow-endpoint');
    expect(createHelp.stdout).not.toContain('keygate audit');

    const misplaced = await keygate(['keys', 'list', '--grace', '60']);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain("Unknown option '--grace' for 'keys list'");
  });

  it('keygate migrate, then keys create, on its own Postgres database', async () => {
    const database = await emptyDatabase();
    const migrated = await keygate(['migrate'], { DATABASE_URL: database.url });
    expect(migrated).toMatchObject({ code: 0, stderr: '' });
    expect(migrated.stdout).toMatch(/^Applied [1-9]\d* migration\(s\)\.\n$/);

    const created = await keygate(
      ['keys', 'create', '--name', 'ci', '--scopes', 'read:data', '--json'],
      { DATABASE_URL: database.url },
    );
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const key = JSON.parse(created.stdout) as { id: string; secret: string; scopes: string[] };
    expect(key.secret).toMatch(/^sk_live_[0-9A-Za-z]{38}$/);
    expect(key.scopes).toEqual(['read:data']);
    const rows = await database.sql`select id, digest, start from keygate_api_keys`;
    expect(rows).toEqual([
      { id: key.id, digest: expect.stringMatching(/^[0-9a-f]{64}$/), start: expect.any(String) },
    ]);
    expect(key.secret.startsWith(rows[0]!.start)).toBe(true);

    // The installed binary finds it in a file, live, without printing it.
    const leaked = path.join(project, 'leaked-config.txt');
    writeFileSync(leaked, `token: ${key.secret}\n`);
    const scanned = await keygate(['scan', leaked], { DATABASE_URL: database.url });
    expect(scanned).toMatchObject({ code: 1, stderr: '' });
    expect(scanned.stdout).toContain('secret/live  live');
    expect(scanned.stdout).not.toContain(key.secret);
  });

  it('without DATABASE_URL or PGlite installed, says what to install and exits 1', async () => {
    const result = await keygate(['keys', 'list']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('npm install @electric-sql/pglite');
    expect(result.stderr).toContain('DATABASE_URL');
  });

  it.each(['backends.cjs', 'backends.mjs'])(
    '%s: migrations found, a key stored and verified, limits on the app’s own ioredis',
    async (script) => {
      const database = await emptyDatabase();
      const namespace = uniqueName('keygate-external');
      try {
        const result = await run(node.path, [script], {
          cwd: project,
          env: cleanEnv({
            DATABASE_URL: database.url,
            REDIS_URL: SHARED_REDIS_URL,
            REDIS_NAMESPACE: namespace,
          }),
        });
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        const report = JSON.parse(result.stdout) as Record<string, unknown>;
        expect(report).toEqual({
          migrations: true,
          stored: [report.keyId],
          keyId: expect.stringMatching(/^key_/),
          authenticated: report.keyId,
          rateLimitLimit: '10000',
          embedded: expect.stringMatching(/^PGLITE_MISSING: .*npm install @electric-sql\/pglite/),
        });
      } finally {
        const redis = await connectSharedRedis();
        await deleteKeys(redis, `${namespace}:*`);
        redis.disconnect();
      }
    },
  );
});
