import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createKeyFormat, createKeyHasher } from '@keygate/core';
import {
  DataDirectoryLockedError,
  type KeyDatabase,
  migrate,
  openEmbedded,
  openKeyDatabase,
} from '@keygate/postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
const postgresEntry = join(repoRoot, 'packages', 'postgres', 'src', 'index.ts');

/** Opening PGlite compiles its WebAssembly each time: seconds, more when the CPU is shared. */
const PGLITE_TIMEOUT_MS = 120_000;
const PGLITE_SETUP_TIMEOUT_MS = 240_000;

const format = createKeyFormat();
const hasher = createKeyHasher();

let scratch: string;
let template: string;
const opened: KeyDatabase[] = [];
const children: ChildProcess[] = [];

// Creating a PGlite cluster runs initdb in WebAssembly (seconds of CPU, minutes on a loaded
// machine); tests start from a copy of the one made here.
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'keygate-embedded-'));
  template = join(scratch, 'template');
  await openEmbedded({ dataDir: template, migrate: false }).then((database) => database.close());
}, PGLITE_SETUP_TIMEOUT_MS);
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(opened.splice(0).map((database) => database.close()));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

let directories = 0;
/** A data directory holding a closed, empty (unmigrated) embedded database. */
async function freshDir(at = join(scratch, `db${++directories}`)): Promise<string> {
  await cp(template, at, { recursive: true });
  return at;
}

async function open(dataDir: string): Promise<KeyDatabase> {
  const database = await openEmbedded({ dataDir });
  opened.push(database);
  return database;
}

function newKey(id: string) {
  const generated = format.generate('secret', 'live');
  return {
    id,
    name: id,
    ownerId: 'org_embedded',
    type: 'secret' as const,
    environment: 'live' as const,
    digest: hasher.digest(generated.secret),
    digestVersion: hasher.version,
    prefix: generated.prefix,
    start: generated.start,
    scopes: ['manage:keys'],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
  };
}

/** A pid that belonged to a process which has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

function writeLock(dataDir: string, holder: { pid: number; hostname?: string }) {
  return writeFile(
    join(dataDir, 'keygate.lock'),
    JSON.stringify({
      hostname: hostname(),
      acquiredAt: '2030-01-01T00:00:00.000Z',
      ...holder,
    }),
  );
}

describe('openEmbedded', { timeout: PGLITE_TIMEOUT_MS }, () => {
  it('persists keys under the data directory across reopening', async () => {
    const dataDir = await freshDir();
    const first = await openEmbedded({ dataDir });
    expect(first.kind).toBe('embedded');
    const key = newKey('key_persisted');
    await first.store.create(key);
    await first.close();
    await first.close();

    const second = await open(dataDir);
    expect((await second.store.findByDigest(key.digest))?.id).toBe('key_persisted');
  });

  it('migrates idempotently, also when called concurrently on one database', async () => {
    const database = await openEmbedded({ dataDir: await freshDir(), migrate: false });
    opened.push(database);
    const results = await Promise.all([migrate(database.db), migrate(database.db)]);
    expect(results.reduce((sum, result) => sum + result.applied, 0)).toBeGreaterThan(0);
    expect(results.some((result) => result.applied === 0)).toBe(true);
    expect(await migrate(database.db)).toEqual({ applied: 0 });
  });

  it('defaults to .keygate/pglite under the working directory', async () => {
    const workingDir = join(scratch, 'app');
    const dataDir = await freshDir(join(workingDir, '.keygate', 'pglite'));
    const previous = process.cwd();
    process.chdir(workingDir);
    try {
      const database = await openKeyDatabase();
      opened.push(database);
      expect(database.kind).toBe('embedded');
    } finally {
      process.chdir(previous);
    }
    const lock = JSON.parse(await readFile(join(dataDir, 'keygate.lock'), 'utf8'));
    expect(lock.pid).toBe(process.pid);
  });
});

describe('the data directory lock', { timeout: PGLITE_TIMEOUT_MS }, () => {
  it('refuses a second opener in the same process and frees the directory on close', async () => {
    const dataDir = await freshDir();
    const first = await openEmbedded({ dataDir });
    const second = openEmbedded({ dataDir });
    await expect(second).rejects.toBeInstanceOf(DataDirectoryLockedError);
    await expect(second).rejects.toThrow(/already open in this process/);
    await first.close();
    expect(existsSync(join(dataDir, 'keygate.lock'))).toBe(false);
  });

  it('refuses another process, naming the holder, and leaves the data intact', async () => {
    const dataDir = await freshDir();
    const database = await open(dataDir);
    await database.store.create(newKey('key_survives'));
    const script = join(scratch, 'second-opener.mts');
    await writeFile(
      script,
      `import { openEmbedded } from ${JSON.stringify(postgresEntry)};
      try {
        await openEmbedded({ dataDir: ${JSON.stringify(dataDir)} });
        console.log('opened');
      } catch (error) {
        console.error(error.message);
        process.exitCode = 3;
      }`,
    );
    const child = run(tsx, [script], { cwd: repoRoot, timeout: 60_000 });
    const failure = await child.then(
      () => null,
      (error: { code: number; stderr: string; stdout: string }) => error,
    );
    expect(failure?.code).toBe(3);
    expect(failure?.stdout).not.toContain('opened');
    expect(failure?.stderr).toContain(`is already open by process ${process.pid}`);
    expect(failure?.stderr).toContain('DATABASE_URL');
    expect((await database.store.get('key_survives'))?.name).toBe('key_survives');
  });

  it('refuses when the lock names a live process', async () => {
    const dataDir = await freshDir();
    const sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    children.push(sleeper);
    await writeLock(dataDir, { pid: sleeper.pid! });
    const attempt = openEmbedded({ dataDir });
    await expect(attempt).rejects.toMatchObject({
      code: 'DATA_DIR_LOCKED',
      holderPid: sleeper.pid,
    });
    await expect(attempt).rejects.toThrow(join(resolve(dataDir), 'keygate.lock'));
  });

  it('takes over a lock left by a process that has exited', async () => {
    const dataDir = await freshDir();
    await writeLock(dataDir, { pid: await deadPid() });
    await open(dataDir);
    const lock = JSON.parse(await readFile(join(dataDir, 'keygate.lock'), 'utf8'));
    expect(lock.pid).toBe(process.pid);
  });

  it('takes over a lock with our pid left by an earlier run (containers reuse pids)', async () => {
    const dataDir = await freshDir();
    await writeLock(dataDir, { pid: process.pid });
    await open(dataDir);
  });

  it('takes over an unreadable lock file', async () => {
    const dataDir = await freshDir();
    await writeFile(join(dataDir, 'keygate.lock'), 'not json');
    await open(dataDir);
  });

  it('refuses a lock held from another host, whose process cannot be checked', async () => {
    const dataDir = await freshDir();
    await writeLock(dataDir, { pid: await deadPid(), hostname: 'another-host' });
    await expect(openEmbedded({ dataDir })).rejects.toThrow(/on another-host/);
  });
});
