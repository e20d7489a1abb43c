import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

const LOCK_FILE = 'keygate.lock';
/** Lock files held by this process; one with our pid but not listed was left by an earlier run. */
const heldHere = new Set<string>();

interface LockHolder {
  pid: number;
  hostname: string;
  acquiredAt: string;
}

/** Another live process has the embedded database open; PGlite allows one process per directory. */
export class DataDirectoryLockedError extends Error {
  readonly code = 'DATA_DIR_LOCKED';
  readonly dataDir: string;
  /** The process holding the lock, when its lock file could be read. */
  readonly holderPid: number | null;

  constructor(dataDir: string, lockFile: string, holder: LockHolder | null) {
    const self = heldHere.has(lockFile);
    const who = holder
      ? `by process ${holder.pid} on ${holder.hostname} (since ${holder.acquiredAt})`
      : 'by another process';
    super(
      `[keygate:DATA_DIR_LOCKED] the embedded database in ${dataDir} is already open ` +
        (self
          ? 'in this process: share the handle openEmbedded() returned instead of opening it twice.'
          : `${who}. The embedded database (PGlite) serves one process at a time: stop that ` +
            'process, or set DATABASE_URL so that the app and the CLI share a Postgres server. ' +
            `If that process no longer exists, delete ${lockFile}.`),
    );
    this.name = 'DataDirectoryLockedError';
    this.dataDir = dataDir;
    this.holderPid = holder?.pid ?? null;
  }
}

export interface DataDirectoryLock {
  /** Gives the directory up; does nothing if the lock is no longer ours. */
  release(): void;
}

/**
 * Claims `dataDir` for this process through a lock file holding our pid. A lock left by a
 * process that no longer runs on this host is taken over; a live holder is refused.
 */
export function lockDataDirectory(directory: string): DataDirectoryLock {
  const dataDir = resolve(directory);
  mkdirSync(dataDir, { recursive: true });
  const lockFile = join(dataDir, LOCK_FILE);
  const mine = JSON.stringify({
    pid: process.pid,
    hostname: hostname(),
    acquiredAt: new Date().toISOString(),
  } satisfies LockHolder);

  // A stale lock can be replaced while a racing opener replaces it too; a few rounds settle it.
  for (let round = 0; round < 5; round++) {
    if (createWithContent(lockFile, mine)) {
      heldHere.add(lockFile);
      return {
        release: () => {
          heldHere.delete(lockFile);
          removeIfContentIs(lockFile, mine);
        },
      };
    }
    const content = readIfExists(lockFile);
    if (content === undefined) continue;
    const holder = parseHolder(content);
    if (holder && isRunning(holder, lockFile)) {
      throw new DataDirectoryLockedError(dataDir, lockFile, holder);
    }
    removeIfContentIs(lockFile, content);
  }
  throw new DataDirectoryLockedError(dataDir, lockFile, parseHolder(readIfExists(lockFile) ?? ''));
}

/** Writes a temporary file and hard-links it into place, so the lock never exists half-written. */
function createWithContent(path: string, content: string): boolean {
  const staging = `${path}.${process.pid}.${randomUUID()}`;
  writeFileSync(staging, content);
  try {
    linkSync(staging, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    unlinkSync(staging);
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function removeIfContentIs(path: string, expected: string): void {
  if (readIfExists(path) !== expected) return;
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function parseHolder(content: string): LockHolder | null {
  try {
    const value = JSON.parse(content) as Partial<LockHolder>;
    if (typeof value.pid !== 'number' || typeof value.hostname !== 'string') return null;
    return { pid: value.pid, hostname: value.hostname, acquiredAt: String(value.acquiredAt) };
  } catch {
    return null;
  }
}

function isRunning(holder: LockHolder, lockFile: string): boolean {
  // A process on another host (a shared volume) cannot be checked from here: assume it runs.
  if (holder.hostname !== hostname()) return true;
  // Containers start their process with the same pid on every run.
  if (holder.pid === process.pid) return heldHere.has(lockFile);
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
