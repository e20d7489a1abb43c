import { spawn } from 'node:child_process';
import { closeSync, lstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import path from 'node:path';
import {
  brandPrefixes,
  createKeyFormat,
  createKeygate,
  DEFAULT_PREFIXES,
  type FoundKey,
  findKeys,
  KeyFinder,
  type KeyFormat,
  type Keygate,
  type KeyPrefixes,
  type KeyStatus,
} from '@keygate/core';
import { openKeyDatabase } from '@keygate/postgres';
import { createRedisBackends, redisConnectionFromEnv } from '@keygate/redis';

/** Longest a report waits for Redis before it revokes anyway (apps then see it when their cache expires). */
const REDIS_WAIT_MS = 3_000;

/** Files larger than this are skipped (and said so): a key hides in text, not in multi-megabyte assets. */
export const MAX_SCANNED_FILE_BYTES = 16 * 1024 * 1024;
/** As git tells binary files: a NUL among the first bytes. */
const BINARY_PROBE_BYTES = 8000;
/** Directories a scan of a tree does not enter: git's own (`--git` reads history) and installed packages. */
const SKIPPED_DIRECTORIES = new Set(['.git', 'node_modules']);

export interface ScanIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** What `--stdin` reads. */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** Where relative paths start. Default: the process's working directory. */
  cwd?: string;
}

export interface ScanRequest {
  paths: string[];
  git: boolean;
  stdin: boolean;
  report: boolean;
  json: boolean;
}

/** Where a key was found. */
interface Location {
  /** A file path (relative to the working directory), `-` for stdin, or `commit <sha>` for a commit message. */
  path: string;
  line: number;
  column: number;
  /** With `--git`: the blob or commit object, and the first commit that holds it. */
  object?: string;
  commit?: string;
}

interface Finding extends Location {
  start: string;
  type: FoundKey['type'];
  environment: FoundKey['environment'];
  /** `unchecked` without a database. */
  status: KeyStatus | 'unchecked';
  keyId: string | null;
  /** With `--report`: what the report did. */
  containment?: string | null;
  secret: string;
}

interface Skipped {
  path: string;
  reason: 'binary' | 'too large' | 'unreadable';
}

/** A usage mistake in a scan's arguments (exit code 2). */
export class ScanUsageError extends Error {}

/**
 * The key prefixes of this deployment: `KEYGATE_PREFIXES` as a brand (`dbdy`, for `dbdy_sk_live_`
 * and the like) or as four prefixes, comma-separated, in the order secret live, secret test,
 * public live, public test. Default: `sk_live_`, `sk_test_`, `pk_live_`, `pk_test_`.
 */
export function prefixesFromEnv(env: NodeJS.ProcessEnv): KeyPrefixes {
  const value = env.KEYGATE_PREFIXES?.trim();
  if (!value) return DEFAULT_PREFIXES;
  const parts = value.split(',').map((part) => part.trim());
  if (parts.length === 1) return brandPrefixes(parts[0]!);
  if (parts.length !== 4) {
    throw new ScanUsageError(
      'KEYGATE_PREFIXES must be a brand (e.g. dbdy) or four prefixes: secret live, secret test, public live, public test',
    );
  }
  const [secretLive, secretTest, publicLive, publicTest] = parts as [
    string,
    string,
    string,
    string,
  ];
  return {
    secret: { live: secretLive, test: secretTest },
    public: { live: publicLive, test: publicTest },
  };
}

/**
 * `keygate scan`: finds this deployment's keys in files, git history or stdin; with
 * `DATABASE_URL`, says whether each is live and, with `--report`, reports it as a leak (its
 * environment's containment applies). Never prints a secret. Exit code 1 when a secret key found
 * is live, or cannot be checked (no database).
 */
export async function runScan(request: ScanRequest, io: ScanIO): Promise<number> {
  const { env } = io;
  const databaseUrl = env.DATABASE_URL || undefined;
  if (request.report && !databaseUrl) {
    throw new ScanUsageError(
      '--report needs DATABASE_URL: the keys found are looked up and contained there',
    );
  }
  if (request.stdin && (request.git || request.paths.length > 0)) {
    throw new ScanUsageError('--stdin reads stdin only: give no paths and no --git with it');
  }
  const format = createKeyFormat(prefixesFromEnv(env));
  const cwd = io.cwd ?? process.cwd();
  const found: Array<Location & { key: FoundKey }> = [];
  const skipped: Skipped[] = [];
  let bytes = 0;
  let files = 0;
  const collect = (location: Omit<Location, 'line' | 'column'>, keys: FoundKey[]) => {
    for (const key of keys) found.push({ ...location, line: key.line, column: key.column, key });
  };

  if (request.stdin) {
    const finder = new KeyFinder(format);
    for await (const chunk of io.stdin ?? process.stdin) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      bytes += data.length;
      collect({ path: '-' }, finder.push(data));
    }
    collect({ path: '-' }, finder.end());
    files = 1;
  } else if (request.git) {
    for (const repository of request.paths.length > 0 ? request.paths : ['.']) {
      const scanned = await scanHistory(path.resolve(cwd, repository), format, collect, skipped);
      bytes += scanned.bytes;
      files += scanned.objects;
    }
  } else {
    for (const target of request.paths.length > 0 ? request.paths : ['.']) {
      const scanned = scanTree(path.resolve(cwd, target), cwd, format, collect, skipped);
      bytes += scanned.bytes;
      files += scanned.files;
    }
  }

  const findings = await judge(found, format, request, databaseUrl, env);
  const failing = findings.filter(
    (f) => f.type === 'secret' && (f.status === 'live' || f.status === 'unchecked'),
  );
  if (request.json) {
    io.out(
      `${JSON.stringify({
        findings: findings.map(({ secret: _secret, ...shown }) => shown),
        live: failing.length,
        scanned: { files, bytes },
        skipped,
      })}\n`,
    );
  } else {
    io.out(summary(findings, skipped, files, bytes, databaseUrl !== undefined));
  }
  return failing.length > 0 ? 1 : 0;
}

/** Each key's status (and with `--report`, the report's outcome), looked up once per secret. */
async function judge(
  found: Array<Location & { key: FoundKey }>,
  format: KeyFormat,
  request: ScanRequest,
  databaseUrl: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<Finding[]> {
  const findings: Finding[] = found.map(({ key, ...location }) => ({
    ...location,
    start: key.start,
    type: key.type,
    environment: key.environment,
    status: 'unchecked',
    keyId: null,
    secret: key.secret,
  }));
  if (!databaseUrl || findings.length === 0) return findings;
  // Running apps learn of a revocation or quarantine over Redis, as with `keys revoke`.
  const connection = request.report ? redisConnectionFromEnv(env) : null;
  const redis = connection
    ? createRedisBackends({ ...connection, logger: { warn: () => {}, info: () => {} } })
    : null;
  let keygate: Keygate | undefined;
  let database: Awaited<ReturnType<typeof openKeyDatabase>> | undefined;
  try {
    await redis?.ready(REDIS_WAIT_MS);
    database = await openKeyDatabase({ databaseUrl, migrate: false });
    keygate = createKeygate({
      pepper: env.KEYGATE_PEPPER || undefined,
      prefixes: format.prefixes,
      store: database.store,
      auditSinks: [database.auditSink],
      limiter: false,
      cache: false,
      ...(redis ? { invalidation: redis.invalidation } : {}),
    });
    const identified = new Map<string, Awaited<ReturnType<Keygate['leaks']['identify']>>>();
    for (const finding of findings) {
      if (!identified.has(finding.secret)) {
        identified.set(finding.secret, await keygate.leaks.identify(finding.secret));
      }
      const known = identified.get(finding.secret);
      finding.status = known?.status ?? 'unknown';
      finding.keyId = known?.record?.id ?? null;
    }
    if (request.report) {
      for (const finding of findings) {
        if (finding.keyId === null) continue;
        const [outcomes] = await keygate.leaks.report(
          [{ token: finding.secret, url: urlOf(finding), source: 'scan' }],
          { id: 'cli' },
        );
        finding.containment = outcomes?.find((o) => o.found)?.containment ?? null;
      }
    }
  } finally {
    await keygate?.close();
    await redis?.close();
    await database?.close();
  }
  return findings;
}

/** Where a finding is, as its leak report records it. */
function urlOf(finding: Location): string {
  const where = `${finding.path}:${finding.line}`;
  return finding.commit ? `git:${finding.commit}:${where}` : where;
}

/** The findings one a line, the skipped files, and a closing count. */
function summary(
  findings: Finding[],
  skipped: Skipped[],
  files: number,
  bytes: number,
  checked: boolean,
): string {
  const lines = findings.map((f) => {
    const where = `${f.path}:${f.line}:${f.column}`;
    const history = f.commit ? ` (commit ${f.commit.slice(0, 12)})` : '';
    const action = f.containment ? `, reported: ${f.containment}` : '';
    return `${where}${history}  ${f.start}…  ${f.type}/${f.environment}  ${f.status}${action}`;
  });
  const live = findings.filter((f) => f.type === 'secret' && f.status === 'live').length;
  const summary = [
    `Scanned ${files} ${files === 1 ? 'file' : 'files'} (${bytes} bytes): ${findings.length} ${findings.length === 1 ? 'key' : 'keys'} found`,
    checked
      ? `, ${live} live secret ${live === 1 ? 'key' : 'keys'}.`
      : findings.length > 0
        ? ' (not checked: set DATABASE_URL to tell live keys from revoked ones).'
        : '.',
  ].join('');
  const skips = skipped.map((s) => `skipped ${s.path}: ${s.reason}`);
  return `${[...lines, ...skips, summary].join('\n')}\n`;
}

/**
 * Every file under `root` (or `root` itself), as bytes, but binary and huge ones. Read with
 * synchronous calls: a command that only reads spends several times less per small file so than
 * through the thread pool and a promise per call.
 */
function scanTree(
  root: string,
  cwd: string,
  format: KeyFormat,
  collect: (location: Omit<Location, 'line' | 'column'>, keys: FoundKey[]) => void,
  skipped: Skipped[],
): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const shown = (file: string) => path.relative(cwd, file) || path.basename(file);
  const visit = (file: string): void => {
    let stats: Stats;
    try {
      stats = lstatSync(file);
    } catch {
      skipped.push({ path: shown(file), reason: 'unreadable' });
      return;
    }
    // Links are not followed: a link out of the tree, or in a loop, is not the tree's content.
    if (stats.isSymbolicLink()) return;
    if (stats.isDirectory()) {
      if (file !== root && SKIPPED_DIRECTORIES.has(path.basename(file))) return;
      let entries: string[];
      try {
        entries = readdirSync(file);
      } catch {
        skipped.push({ path: shown(file), reason: 'unreadable' });
        return;
      }
      for (const entry of entries.sort()) visit(path.join(file, entry));
      return;
    }
    if (!stats.isFile()) return;
    if (stats.size > MAX_SCANNED_FILE_BYTES) {
      skipped.push({ path: shown(file), reason: 'too large' });
      return;
    }
    const content = readWhole(file, stats.size);
    if (content === null) {
      skipped.push({ path: shown(file), reason: 'unreadable' });
      return;
    }
    if (isBinary(content)) {
      skipped.push({ path: shown(file), reason: 'binary' });
      return;
    }
    files++;
    bytes += content.length;
    collect({ path: shown(file) }, findKeys(content, format));
  };
  visit(root);
  return { files, bytes };
}

function readWhole(file: string, size: number): Buffer | null {
  let descriptor: number | undefined;
  try {
    descriptor = openSync(file, 'r');
    // Up to the size lstat gave: a file growing meanwhile is read as it was.
    const buffer = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const count = readSync(descriptor, buffer, read, size - read, read);
      if (count === 0) break;
      read += count;
    }
    return buffer.subarray(0, read);
  } catch {
    return null;
  } finally {
    if (descriptor !== undefined) closeSync(descriptor);
  }
}

function isBinary(content: Uint8Array): boolean {
  return content.subarray(0, BINARY_PROBE_BYTES).includes(0);
}

/**
 * Every blob and commit message reachable from any ref of the repository at `directory`, each
 * read once (`git rev-list --all --objects` piped to `git cat-file --batch`): a key committed
 * and deleted later is still found. A blob with a key is named by its path and the first commit
 * that holds it.
 */
async function scanHistory(
  directory: string,
  format: KeyFormat,
  collect: (location: Omit<Location, 'line' | 'column'>, keys: FoundKey[]) => void,
  skipped: Skipped[],
): Promise<{ objects: number; bytes: number }> {
  const listing = await runGit(directory, ['rev-list', '--all', '--objects']);
  const paths = new Map<string, string>();
  for (const line of listing.toString('utf8').split('\n')) {
    if (line.length < 40) continue;
    const space = line.indexOf(' ');
    const sha = space === -1 ? line : line.slice(0, space);
    if (!paths.has(sha)) paths.set(sha, space === -1 ? '' : line.slice(space + 1));
  }
  let objects = 0;
  let bytes = 0;
  const withKeys: Array<{ sha: string; keys: FoundKey[] }> = [];
  await catFile(directory, [...paths.keys()], (sha, type, content) => {
    if (type !== 'blob' && type !== 'commit') return;
    const name = type === 'commit' ? `commit ${sha}` : (paths.get(sha) ?? sha);
    if (content === null) {
      skipped.push({ path: `${name} (${sha.slice(0, 12)})`, reason: 'too large' });
      return;
    }
    if (isBinary(content)) {
      skipped.push({ path: `${name} (${sha.slice(0, 12)})`, reason: 'binary' });
      return;
    }
    objects++;
    bytes += content.length;
    const keys = findKeys(content, format);
    if (keys.length > 0) withKeys.push({ sha, keys });
  });
  for (const { sha, keys } of withKeys) {
    const name = paths.get(sha) || `commit ${sha}`;
    const commit = name.startsWith('commit ')
      ? sha
      : (
          await runGit(directory, [
            'log',
            '--all',
            '--reverse',
            '--format=%H',
            `--find-object=${sha}`,
          ])
        )
          .toString('utf8')
          .split('\n')[0];
    collect({ path: name, object: sha, ...(commit ? { commit } : {}) }, keys);
  }
  return { objects, bytes };
}

function runGit(directory: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', directory, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('error', (error) => reject(new Error(`cannot run git: ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else
        reject(
          new Error(`git ${args[0]} in ${directory} failed: ${err.trim() || `exit code ${code}`}`),
        );
    });
  });
}

/**
 * Streams objects through one `git cat-file --batch`: `onObject` gets each object's content, or
 * `null` for one past the size limit (its bytes are passed over, never held).
 */
function catFile(
  directory: string,
  shas: string[],
  onObject: (sha: string, type: string, content: Buffer | null) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', directory, 'cat-file', '--batch'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('error', (error) => reject(new Error(`cannot run git: ${error.message}`)));
    const parser = new BatchParser(onObject);
    child.stdout.on('data', (chunk: Buffer) => parser.push(chunk));
    child.once('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(`git cat-file in ${directory} failed: ${err.trim() || `exit code ${code}`}`),
        );
    });
    child.stdin.on('error', () => {});
    child.stdin.end(shas.length > 0 ? `${shas.join('\n')}\n` : '');
  });
}

/** `git cat-file --batch` output: `<sha> <type> <size>\n<content>\n`, object after object. */
class BatchParser {
  readonly #onObject: (sha: string, type: string, content: Buffer | null) => void;
  #pending: Buffer = Buffer.alloc(0);
  #object: {
    sha: string;
    type: string;
    size: number;
    keep: boolean;
    parts: Buffer[];
    left: number;
  } | null = null;

  constructor(onObject: (sha: string, type: string, content: Buffer | null) => void) {
    this.#onObject = onObject;
  }

  push(chunk: Buffer): void {
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = Buffer.alloc(0);
    while (data.length > 0) {
      const object = this.#object;
      if (object === null) {
        const newline = data.indexOf(0x0a);
        if (newline === -1) {
          this.#pending = data;
          return;
        }
        const [sha = '', type = '', size = '0'] = data
          .subarray(0, newline)
          .toString('utf8')
          .split(' ');
        data = data.subarray(newline + 1);
        if (type === 'missing') continue;
        const length = Number(size);
        this.#object = {
          sha,
          type,
          size: length,
          keep: length <= MAX_SCANNED_FILE_BYTES && (type === 'blob' || type === 'commit'),
          parts: [],
          // The content, and the newline after it.
          left: length + 1,
        };
        continue;
      }
      const take = Math.min(object.left, data.length);
      if (object.keep) object.parts.push(data.subarray(0, take));
      object.left -= take;
      data = data.subarray(take);
      if (object.left === 0) {
        this.#object = null;
        const content = object.keep ? Buffer.concat(object.parts).subarray(0, object.size) : null;
        this.#onObject(object.sha, object.type, content);
      }
    }
  }
}
