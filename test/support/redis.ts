/**
 * Redis for tests.
 *
 * - The shared server (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) is used by every
 *   test file at once: never flush it; give each test its own namespace, subject or channel
 *   with `uniqueName()` and remove its keys with `deleteKeys()`.
 * - A test that kills, stalls or restarts Redis starts its own server with
 *   `startRedisServer()` on a free port and stops it by PID; the shared one is never touched.
 *   Servers still running when the test process exits are killed then.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * keygate's Redis timeout (`timeoutMs`, `KEYGATE_REDIS_TIMEOUT_MS`) for tests that assert exact
 * limits or delivered invalidations on a healthy Redis: on a loaded machine a reply (or the
 * event loop that reads it) can take longer than the default 500 ms, and a healthy node would be
 * taken for down. A killed server still refuses connections at once, whatever the timeout.
 */
export const GENEROUS_REDIS_TIMEOUT_MS = 10_000;

export const START_SHARED_REDIS =
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no';

/** `label` plus a random suffix, for namespaces, subjects, IPs' prefixes and channels. */
export function uniqueName(label: string): string {
  return `${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * A client on the shared Redis, connected and answering. Fails with the command that
 * starts Redis when it is not reachable (tests never skip for a missing service).
 */
export async function connectSharedRedis(options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(SHARED_REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 1,
    ...options,
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new Error(
      `Redis is not reachable at ${SHARED_REDIS_URL} (${(error as Error).message}). Start it with:\n  ${START_SHARED_REDIS}`,
    );
  }
  return client;
}

/** Deletes every key matching `pattern` (SCAN, so other tests' keys are left alone). */
export async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}

/** A TCP port on 127.0.0.1 that nothing listens on at the time of the call. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  port: number;
  url: string;
  pid: number;
  /** Kills this server (SIGKILL, by PID) and waits until it has exited. */
  kill(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open but nothing is answered. */
  suspend(): void;
  /** Undoes `suspend()` (SIGCONT). */
  resume(): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface StartRedisServerOptions {
  /** Port to listen on, e.g. a killed server's to bring it back. Default: a free port. */
  port?: number;
  /** Extra `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  args?: string[];
}

/**
 * Starts a private `redis-server` (no persistence, loopback only, working directory in a
 * temporary folder) and resolves once it accepts connections.
 */
export async function startRedisServer(
  options: StartRedisServerOptions = {},
): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keygate-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--dir',
    dir,
    ...(options.args ?? []),
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
      resolve();
    });
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('did not start within 10 s')), 10_000);
    const onError = (error: NodeJS.ErrnoException) =>
      fail(
        error.code === 'ENOENT'
          ? new Error('redis-server is not installed (apt-get install redis-server)')
          : error,
      );
    const onExit = (code: number | null) => fail(new Error(`exited with code ${code}`));
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`redis-server on port ${port}: ${error.message}\n${output}`));
    };
    child.once('error', onError);
    child.once('exit', onExit);
    const watch = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.off('error', onError);
        child.off('exit', onExit);
        resolve();
      }
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
    suspend() {
      process.kill(child.pid!, 'SIGSTOP');
    },
    resume() {
      process.kill(child.pid!, 'SIGCONT');
    },
  };
}

/** Resolves when `check` returns true; fails after `timeoutMs` with `what` in the message. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
