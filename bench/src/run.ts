/**
 * `pnpm bench`: keygate side by side with the bare frameworks and with the peers users would
 * pick instead, on this machine's Postgres and Redis; writes BENCHMARKS.md at the repo root.
 *
 * Environment (all optional):
 *   BENCH_DURATION      measured seconds per run (10)        BENCH_WARMUP  warm-up seconds (3)
 *   BENCH_ROUNDS        interleaved rounds (3)               BENCH_CONNECTIONS  (50)
 *   BENCH_KEYS          key pool per contestant (1000)       BENCH_MANY_KEYS    (100000)
 *   BENCH_LOOKUP_KEYS   largest table for lookups (1000000)  BENCH_ONLY  comma-separated contestant ids
 *   BENCH_POSTGRES_URL  server to create the bench databases on (postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_REDIS_URL     Redis for the limiters (redis://127.0.0.1:6379/15; only bench prefixes are touched)
 *   BENCH_OUTPUT        report path (BENCHMARKS.md at the repo root)
 *   BENCH_LOAD          load generator: wrk (the default when installed) or autocannon
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectPostgres, type KeyDatabase, openKeyDatabase } from '@keygate/postgres';
import { bundle } from './build.js';
import { CONTESTANTS, type Contestant } from './contestants.js';
import type { LoadConfig, LoadTool } from './load.js';
import {
  detectPinning,
  percentile,
  type RunningServer,
  runLoad,
  sequentialLatencies,
  startServer,
} from './measure.js';
import { summariseProfile } from './profile.js';
import {
  analysisOf,
  type BenchReport,
  type ContestantResult,
  type LatencySummary,
  type RoundResult,
  renderReport,
} from './report.js';
import {
  clearBenchRedis,
  dropDatabase,
  insertKeygateKeys,
  lookupScaling,
  openBackendCounters,
  provisionBetterAuth,
  provisionHandRolled,
  recreateDatabase,
  redisRoundTripsPerRequest,
  serviceVersions,
} from './setup.js';
import { writeWrkScript } from './wrk-script.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');
const work = join(repoRoot, '.bench-tmp');
const BENCH_DB = 'keygate_bench';
const LOOKUP_DB = 'keygate_bench_lookup';
const ROUTE_PATH = '/v1/websites/w_1/analytics';
const SEQUENTIAL_REQUESTS = 1000;
const COLD_KEYS = 1000;
const PROFILE_SECONDS = 5;

function numberFromEnv(name: string, fallback: number, { zero = false } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zero)) {
    throw new Error(`${name} must be a ${zero ? 'non-negative' : 'positive'} number`);
  }
  return value;
}

const settings = {
  durationSeconds: numberFromEnv('BENCH_DURATION', 10),
  warmupSeconds: numberFromEnv('BENCH_WARMUP', 3),
  rounds: Math.round(numberFromEnv('BENCH_ROUNDS', 3)),
  connections: Math.round(numberFromEnv('BENCH_CONNECTIONS', 50)),
  keyPool: Math.round(numberFromEnv('BENCH_KEYS', 1000)),
};
const manyKeys = Math.round(numberFromEnv('BENCH_MANY_KEYS', 100_000, { zero: true }));
const lookupKeys = Math.round(numberFromEnv('BENCH_LOOKUP_KEYS', 1_000_000, { zero: true }));
const postgresUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
/** Measured seconds of the run that counts Redis commands sent. */
const REDIS_COUNT_SECONDS = 10;
const output = resolve(repoRoot, process.env.BENCH_OUTPUT ?? 'BENCHMARKS.md');
const only = process.env.BENCH_ONLY?.split(',').map((id) => id.trim());
const contestants = CONTESTANTS.filter((c) => !only || only.includes(c.id));
const loadTool: LoadTool =
  process.env.BENCH_LOAD === 'autocannon' ||
  spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status !== 0
    ? 'autocannon'
    : 'wrk';

const started = Date.now();
const log = (message: string) =>
  console.log(`[bench +${Math.round((Date.now() - started) / 1000)}s] ${message}`);

function packageVersion(name: string, from = benchDir): string {
  try {
    const file = join(from, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function keygateVersion(): string {
  const version = packageVersion('@keygate/core');
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot })
      .toString()
      .trim();
    return `${version} (commit ${commit}, with the working tree as it was)`;
  } catch {
    return version;
  }
}

interface Prepared {
  url: string;
  keysFiles: Record<Exclude<Contestant['keys'], 'none'>, string>;
  embeddedDir: string;
  coldKeysFile: string;
}

async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const at = Date.now();
  const result = await work();
  log(`${what} (${((Date.now() - at) / 1000).toFixed(1)} s)`);
  return result;
}

async function prepare(): Promise<Prepared> {
  const url = await recreateDatabase(postgresUrl, BENCH_DB);
  const keysDir = join(work, 'keys');
  mkdirSync(keysDir, { recursive: true });
  const embeddedDir = join(work, 'pglite');
  const n = settings.keyPool;
  const keygatePostgres = await timed(
    `keygate: migrated ${BENCH_DB}, ${n} + ${COLD_KEYS} keys`,
    () =>
      withDatabase(connectPostgres({ url, migrate: true }), async (db) => [
        await insertKeygateKeys(db, n, 'key_bench_', join(keysDir, 'keygate-postgres')),
        await insertKeygateKeys(db, COLD_KEYS, 'key_cold_', join(keysDir, 'cold')),
      ]),
  );
  const keysFiles = {
    'keygate-postgres': keygatePostgres[0]!,
    'keygate-embedded': await timed(`keygate embedded: ${n} keys`, () =>
      withDatabase(openKeyDatabase({ dataDir: embeddedDir }), (db) =>
        insertKeygateKeys(db, n, 'key_bench_', join(keysDir, 'keygate-embedded')),
      ),
    ),
    'better-auth': await timed(`better-auth: migrated, ${n} keys`, () =>
      provisionBetterAuth(url, n, join(keysDir, 'better-auth')),
    ),
    'hand-rolled': await timed(`hand-rolled: table, ${n} keys`, () =>
      provisionHandRolled(url, n, join(keysDir, 'hand-rolled')),
    ),
  };
  return { url, keysFiles, embeddedDir, coldKeysFile: keygatePostgres[1]! };
}

async function withDatabase<T>(
  opening: Promise<KeyDatabase>,
  use: (db: KeyDatabase['db']) => Promise<T>,
): Promise<T> {
  const database = await opening;
  try {
    return await use(database.db);
  } finally {
    await database.close();
  }
}

function serverEnv(contestant: Contestant, prepared: Prepared): Record<string, string> {
  switch (contestant.backends) {
    case 'postgres+redis':
      return { DATABASE_URL: prepared.url, REDIS_URL: redisUrl };
    case 'postgres':
      return { DATABASE_URL: prepared.url };
    case 'embedded':
      return { DATABASE_URL: '', REDIS_URL: '', KEYGATE_DATA_DIR: prepared.embeddedDir };
    case 'none':
      return {};
  }
}

function readLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

/** stderr lines a server wrote (its stdout carries only the READY line). */
function countLogLines(file: string): number {
  return readLines(file).filter((line) => !line.startsWith('READY ')).length;
}

function describeRun(run: Omit<RoundResult, 'round'>): string {
  const problems = run.non2xx + run.errors + run.timeouts;
  return (
    `${Math.round(run.requestsPerSecond)} req/s, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms, ` +
    `${run.cpuUsPerRequest.toFixed(0)} µs CPU/req, ${run.peakRssMb.toFixed(0)} MB, ` +
    `${run.redisExecutedPerRequest.toFixed(3)} Redis cmds run/req, ${run.postgresRowsPerRequest.toFixed(4)} PG rows/req` +
    (problems > 0 ? `, ${run.non2xx} non-2xx, ${run.errors} errors, ${run.timeouts} timeouts` : '')
  );
}

async function main(): Promise<void> {
  rmSync(work, { recursive: true, force: true });
  for (const dir of ['logs', 'load', 'profiles']) mkdirSync(join(work, dir), { recursive: true });
  const pinning = detectPinning();
  log(
    `${contestants.length} contestants × ${settings.rounds} rounds, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s, ${settings.connections} connections; ${pinning.description}`,
  );
  const services = await serviceVersions(postgresUrl, redisUrl);
  const loadAverageAtStart = loadavg();
  const built = await bundle(join(benchDir, 'src'), join(benchDir, '.build'));
  log('bundled the servers and the load generator');
  await clearBenchRedis(redisUrl);

  const prepared = await prepare();
  const serverFile = (name: string) => {
    const file = built.servers.get(name);
    if (!file) throw new Error(`no server bundle named ${name}`);
    return file;
  };

  let runs = 0;
  const wrkScript = writeWrkScript(join(work, 'keys.lua'));
  const counters = await openBackendCounters(prepared.url, redisUrl);

  async function launch(
    contestant: Contestant,
    tag: string,
    extra: { nodeArgs?: string[]; env?: Record<string, string> } = {},
  ): Promise<{ server: RunningServer; logFile: string }> {
    const logFile = join(work, 'logs', `${contestant.id}-${tag}.log`);
    const server = await startServer({
      file: serverFile(contestant.server),
      env: { PORT: '0', ...serverEnv(contestant, prepared), ...contestant.env, ...extra.env },
      pin: pinning.server,
      logFile,
      nodeArgs: extra.nodeArgs,
      cwd: work,
    });
    return { server, logFile };
  }

  function loadConfig(
    server: RunningServer,
    keysFile: string | undefined,
    seconds: number,
    primeKeys = true,
  ): LoadConfig {
    return {
      url: `http://127.0.0.1:${server.port}${ROUTE_PATH}`,
      connections: settings.connections,
      warmupSeconds: settings.warmupSeconds,
      durationSeconds: seconds,
      keysFile,
      primeKeys,
      tool: loadTool,
      wrkScript,
    };
  }

  const keysFileOf = (c: Contestant) =>
    c.keys === 'none' ? undefined : prepared.keysFiles[c.keys];

  /**
   * One server under load, from start to stop: throughput, latency and CPU of the measured run,
   * and the Redis commands and Postgres rows the server caused over its whole life (priming,
   * warm-up, measured run and the flush on shutdown) per request it was sent.
   */
  async function measureRun(
    contestant: Contestant,
    tag: string,
    keysFile: string | undefined,
    seconds: number,
    options: { primeKeys?: boolean; nodeArgs?: string[] } = {},
  ): Promise<Omit<RoundResult, 'round'>> {
    const before = await counters.read();
    const { server, logFile } = await launch(contestant, tag, { nodeArgs: options.nodeArgs });
    try {
      const load = await runLoad(
        built.load,
        loadConfig(server, keysFile, seconds, options.primeKeys),
        pinning.load,
        join(work, 'load', `${++runs}.json`),
        server,
      );
      const peakRssMb = server.peakRssMb();
      await server.stop();
      const after = await counters.settled();
      return {
        ...load,
        peakRssMb,
        serverLogLines: countLogLines(logFile),
        redisExecutedPerRequest: (after.redisCommands - before.redisCommands) / load.requestsSent,
        postgresRowsPerRequest:
          contestant.backends === 'postgres+redis' || contestant.backends === 'postgres'
            ? (after.postgresRowsWritten - before.postgresRowsWritten) / load.requestsSent
            : Number.NaN,
      };
    } finally {
      await server.stop();
    }
  }

  // Throughput: every contestant once per round, the order rotated each round.
  const results: ContestantResult[] = contestants.map((contestant) => ({ contestant, rounds: [] }));
  for (let round = 1; round <= settings.rounds; round++) {
    const shift = (round - 1) % results.length;
    const order = [...results.slice(shift), ...results.slice(0, shift)];
    for (const result of order) {
      const { contestant } = result;
      const sample = await measureRun(
        contestant,
        `round${round}`,
        keysFileOf(contestant),
        settings.durationSeconds,
      );
      result.rounds.push({ ...sample, round });
      log(`round ${round} ${contestant.id}: ${describeRun(sample)}`);
    }
  }

  // Round trips to Redis, counted with MONITOR in a run of their own (it slows Redis down), over
  // 10 s after priming and warm-up: at bench load, and long enough that a leased server's
  // renewals are counted at about their average rate, not all or none of them.
  const redisRoundTrips: Record<string, number> = {};
  for (const contestant of contestants.filter((c) => c.backends === 'postgres+redis')) {
    redisRoundTrips[contestant.id] = await redisRoundTripsPerRequest(redisUrl, async (mark) => {
      const { server } = await launch(contestant, 'redis-count');
      try {
        const load = await runLoad(
          built.load,
          loadConfig(server, keysFileOf(contestant), REDIS_COUNT_SECONDS),
          pinning.load,
          join(work, 'load', `${++runs}.json`),
          server,
          mark,
        );
        await server.stop();
        return load.requests;
      } finally {
        await server.stop();
      }
    });
    log(`${contestant.id}: ${redisRoundTrips[contestant.id]!.toFixed(3)} Redis round trips/req`);
  }

  const byId = (id: string) => CONTESTANTS.find((c) => c.id === id)!;
  const wanted = (id: string) => !only || only.includes(id);

  // One request at a time: bare Hono, keygate warm (cache hits) and cold (cache misses).
  const sequential: LatencySummary[] = [];
  const summarise = (label: string, times: number[]): LatencySummary => ({
    label,
    samples: times.length,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
  });
  if (wanted('bare-hono')) {
    const { server } = await launch(byId('bare-hono'), 'sequential');
    try {
      const url = `http://127.0.0.1:${server.port}${ROUTE_PATH}`;
      await sequentialLatencies(url, [], 200);
      sequential.push(
        summarise('bare hono', await sequentialLatencies(url, [], SEQUENTIAL_REQUESTS)),
      );
    } finally {
      await server.stop();
    }
  }
  if (wanted('keygate-hono')) {
    const { server } = await launch(byId('keygate-hono'), 'sequential');
    try {
      const url = `http://127.0.0.1:${server.port}${ROUTE_PATH}`;
      const keys = readLines(prepared.keysFiles['keygate-postgres']);
      await sequentialLatencies(url, keys, Math.max(200, keys.length));
      sequential.push(
        summarise(
          'keygate hono, Postgres + Redis, warm (cache hit)',
          await sequentialLatencies(url, keys, SEQUENTIAL_REQUESTS),
        ),
      );
      const cold = readLines(prepared.coldKeysFile);
      sequential.push(
        summarise(
          'keygate hono, Postgres + Redis, cold (cache miss: one Postgres lookup)',
          await sequentialLatencies(url, cold, cold.length),
        ),
      );
    } finally {
      await server.stop();
    }
    log(
      `one at a time: ${sequential.map((s) => `${s.label}: p50 ${s.p50.toFixed(3)} / p99 ${s.p99.toFixed(3)} ms`).join('; ')}`,
    );
  }

  // The cold path under load, and memory with many distinct keys: more keys in traffic than
  // either verification cache holds, so nearly every request is a miss and a Postgres lookup.
  const manyKeysResults: BenchReport['manyKeys'] = [];
  if (manyKeys > 0) {
    const coldContestants = ['keygate-hono', 'hand-rolled-hono'].filter(wanted).map(byId);
    for (const contestant of coldContestants) {
      const file =
        contestant.keys === 'hand-rolled'
          ? await timed(`hand-rolled: inserted ${manyKeys} more keys`, () =>
              provisionHandRolled(
                prepared.url,
                manyKeys,
                join(work, 'keys', 'many-hr'),
                'hr_many_',
              ),
            )
          : await timed(`keygate: inserted ${manyKeys} more keys`, () =>
              withDatabase(connectPostgres({ url: prepared.url }), (db) =>
                insertKeygateKeys(db, manyKeys, 'key_many_', join(work, 'keys', 'many')),
              ),
            );
      // More keys than the cache holds: priming could not warm it.
      const run = await measureRun(contestant, 'many-keys', file, settings.durationSeconds, {
        primeKeys: false,
      });
      manyKeysResults.push({ contestant, keys: manyKeys, run });
      log(`${contestant.id}, ${manyKeys} keys: ${describeRun(run)}`);
    }
  }

  // CPU profile of the keygate server under the same load.
  let profile: BenchReport['profile'] = null;
  if (wanted('keygate-hono')) {
    const profileDir = join(work, 'profiles');
    const { server } = await launch(byId('keygate-hono'), 'profile', {
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    });
    let window: { fromUs: number; toUs: number } | null = null;
    try {
      const load = await runLoad(
        built.load,
        loadConfig(server, prepared.keysFiles['keygate-postgres'], PROFILE_SECONDS),
        pinning.load,
        join(work, 'load', 'profile.json'),
        server,
      );
      window = { fromUs: load.measuredFromUs, toUs: load.measuredToUs };
    } finally {
      await server.stop();
    }
    const written = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
    if (written) {
      const file = join(profileDir, written);
      profile = summariseProfile(file, repoRoot, join(benchDir, '.build'), window);
      log(`profiled: ${file}`);
    }
  }

  // Key lookup latency as the table grows.
  let lookup: BenchReport['lookup'] = [];
  if (lookupKeys > 0) {
    const url = await recreateDatabase(postgresUrl, LOOKUP_DB);
    try {
      const sizes = [...new Set([Math.min(1000, lookupKeys), lookupKeys])];
      lookup = await lookupScaling(url, sizes, 2000);
      log(`lookups: ${lookup.map((t) => `${t.keys} keys p50 ${t.p50.toFixed(3)} ms`).join(', ')}`);
    } finally {
      await dropDatabase(postgresUrl, LOOKUP_DB);
    }
  }

  const cpu = cpus();
  const report: BenchReport = {
    date: new Date(),
    elapsedSeconds: (Date.now() - started) / 1000,
    machine: {
      cpu: cpu[0]?.model.trim() ?? 'unknown CPU',
      cores: cpu.length,
      memoryGb: totalmem() / 1024 ** 3,
      os: `${type()} ${release()}`,
      node: process.version,
    },
    loadAverageAtStart,
    pinning: pinning.description,
    services,
    versions: [
      ['keygate', keygateVersion()],
      ...[
        'hono',
        '@hono/node-server',
        'express',
        'koa',
        '@koa/router',
        'better-auth',
        '@better-auth/api-key',
        'express-rate-limit',
        'rate-limit-redis',
        'rate-limiter-flexible',
        'lru-cache',
        'postgres',
        'pg',
        'ioredis',
        'autocannon',
      ].map((name): [string, string] => [name, packageVersion(name)]),
    ],
    settings,
    results,
    sequential,
    manyKeys: manyKeysResults,
    redisRoundTrips,
    loadTool,
    lookup,
    profile,
    profileSeconds: PROFILE_SECONDS,
  };
  await counters.close();
  const previous = existsSync(output) ? readFileSync(output, 'utf8') : '';
  writeFileSync(output, renderReport(report, analysisOf(previous)));
  log(`wrote ${output}`);
}

try {
  await main();
} finally {
  await dropDatabase(postgresUrl, BENCH_DB).catch((error: unknown) =>
    console.error(`could not drop ${BENCH_DB}:`, error),
  );
  await clearBenchRedis(redisUrl).catch((error: unknown) =>
    console.error('could not clear the bench keys from Redis:', error),
  );
  rmSync(join(work, 'pglite'), { recursive: true, force: true });
}
