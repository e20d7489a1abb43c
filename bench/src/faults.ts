/**
 * The degradation figures of BENCHMARKS.md: the Hono reference app (its own process) on Postgres
 * behind a TCP fault proxy, under autocannon (this process, 50 keep-alive connections).
 *
 * 1. Normal: the known keys, cached, for `FAULT_SECONDS` (default 10): p50, p99.
 * 2. The database goes silent: one request with an unknown key (the first timeout), then, once
 *    every known key's cache entry has expired (30 s TTL), the known keys again, served stale,
 *    while unknown keys are sent one at a time: p99 of each; then unknown keys with no other load.
 *    The app's CPU time per request (from /proc) is reported beside the latencies, which a busy
 *    machine inflates.
 * 3. The database answers again: how long until `/health` says the store is up.
 * 4. SIGTERM under 50-connection keep-alive load: how long until the process exits, and whether
 *    every 2xx the clients got (all phases, the silent one's held while the sink was down) is in
 *    `keygate_usage_counts` (the table may hold a few more: autocannon leaves uncounted the answers
 *    still on their way when a timed phase ends, up to one per connection).
 *
 * Usage: `pnpm --filter @keygate/bench exec tsx src/faults.ts` (Postgres on 127.0.0.1:5432, or
 * `BENCH_DATABASE_URL`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createKeygate } from '@keygate/core';
import { connectPostgres } from '@keygate/postgres';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { faultProxy } from '../../test/support/fault-proxy.js';
import { dropDatabase, recreateDatabase } from './setup.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SECONDS = Number(process.env.FAULT_SECONDS ?? 10);
const ROUTE = '/v1/websites/w_1/analytics';
const KNOWN_KEYS = 200;
const UNKNOWN_SAMPLES = 200;
const CACHE_TTL_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (ms: number) => Math.round(ms * 100) / 100;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** autocannon over `keys` in turn for `seconds` (or until `stop` resolves): 2xx count and latencies of 2xx. */
function load(origin: string, keys: string[], seconds: number, stop?: Promise<unknown>) {
  let next = 0;
  const latencies: number[] = [];
  let ok = 0;
  let other = 0;
  return new Promise<{ ok: number; other: number; p50: number; p99: number; rps: number }>(
    (resolve) => {
      const started = performance.now();
      const instance = autocannon(
        {
          url: `${origin}${ROUTE}`,
          connections: 50,
          duration: seconds,
          requests: [
            {
              setupRequest: (request) => ({
                ...request,
                headers: { ...request.headers, 'x-api-key': keys[next++ % keys.length]! },
              }),
            },
          ],
        },
        () => {
          const elapsed = (performance.now() - started) / 1000;
          resolve({
            ok,
            other,
            p50: round(percentile(latencies, 50)),
            p99: round(percentile(latencies, 99)),
            rps: Math.round(ok / elapsed),
          });
        },
      );
      instance.on('response', (_client, status, _bytes, responseTime) => {
        if (status >= 200 && status < 300) {
          ok++;
          latencies.push(responseTime);
        } else other++;
      });
      void stop?.then(() => instance.stop());
    },
  );
}

/** CPU time the process has used, in µs (user + system, from /proc: robust to a busy machine). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime, fields 14 and 15 of stat, in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function timed(origin: string, key: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const response = await fetch(`${origin}${ROUTE}`, { headers: { 'x-api-key': key } });
  await response.arrayBuffer();
  return { ms: performance.now() - started, status: response.status };
}

function startApp(databaseUrl: string): Promise<{ child: ChildProcess; origin: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'examples/hono/src/server.ts')],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: databaseUrl,
        REDIS_URL: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const watch = (chunk: Buffer) => {
      output += chunk.toString();
      process.stderr.write(chunk);
      const listening = /listening on http:\/\/localhost:(\d+)/.exec(output);
      if (listening) resolve({ child, origin: `http://127.0.0.1:${listening[1]}` });
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.once('exit', (code) => reject(new Error(`the app exited with ${code}\n${output}`)));
  });
}

const name = `keygate_faults_${process.pid}`;
const url = await recreateDatabase(SERVER, name);
const database = await connectPostgres({ url, migrate: true });
const keygate = createKeygate({ store: database.store, auditSinks: [database.auditSink] });
const known: string[] = [];
for (let i = 0; i < KNOWN_KEYS; i++) {
  known.push((await keygate.keys.create({ name: `known ${i}`, scopes: ['read:data'] })).secret);
}
const unknown: string[] = [];
for (let i = 0; i < UNKNOWN_SAMPLES + 1; i++) {
  unknown.push((await keygate.keys.create({ name: `unknown ${i}`, scopes: ['read:data'] })).secret);
}
await keygate.close();
const proxy = await faultProxy(url);
const { child, origin } = await startApp(proxy.url);
const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
let served = 0;

// 1. Normal: every known key cached.
const warmedAt = Date.now();
served += (await load(origin, known, 3)).ok;
let cpu = cpuMicros(child.pid!);
const normal = await load(origin, known, SECONDS);
const normalCpu = (cpuMicros(child.pid!) - cpu) / (normal.ok + normal.other);
served += normal.ok;

// 2. Silent: the first timeout, then stale entries and unknown keys.
proxy.set('silent');
const first = await timed(origin, unknown[0]!);
await sleep(Math.max(0, warmedAt + CACHE_TTL_MS + 3_000 + 1_000 - Date.now()));
let sampling = true;
const unknownLatencies: number[] = [];
const unknownStatuses = new Map<number, number>();
const sampler = (async () => {
  for (let i = 1; sampling && i <= UNKNOWN_SAMPLES; i++) {
    const { ms, status } = await timed(origin, unknown[i]!);
    unknownLatencies.push(ms);
    unknownStatuses.set(status, (unknownStatuses.get(status) ?? 0) + 1);
  }
})();
cpu = cpuMicros(child.pid!);
const stale = await load(origin, known, SECONDS);
const staleCpu = (cpuMicros(child.pid!) - cpu) / (stale.ok + stale.other + unknownLatencies.length);
sampling = false;
await sampler;
served += stale.ok;
// The same, with no other load: what the 503 itself costs.
const idleUnknown: number[] = [];
for (let i = 1; i <= UNKNOWN_SAMPLES; i++) idleUnknown.push((await timed(origin, unknown[i]!)).ms);

// 3. The database answers again.
proxy.set('pass');
const recoveryStarted = performance.now();
for (;;) {
  const health = (await (await fetch(`${origin}/health`)).json()) as { data?: { store?: string } };
  if (health.data?.store === 'up') break;
  await sleep(50);
}
const recoveryMs = performance.now() - recoveryStarted;

// 4. SIGTERM under load.
let signalled = 0;
const underLoad = load(origin, known, 60, exited);
await sleep(3_000);
signalled = performance.now();
child.kill('SIGTERM');
const code = await exited;
const shutdownMs = performance.now() - signalled;
const last = await underLoad;
served += last.ok;
const sql = postgres(url, { max: 1, onnotice: () => {} });
const [{ counted }] = await sql<[{ counted: number }]>`
  select coalesce(sum(authenticated), 0)::int as counted from keygate_usage_counts`;
await sql.end();
await database.close();
await proxy.close();
await dropDatabase(SERVER, name);

console.log(
  JSON.stringify(
    {
      normal: {
        p50: normal.p50,
        p99: normal.p99,
        rps: normal.rps,
        cpuMicrosPerRequest: Math.round(normalCpu),
      },
      firstTimeoutMs: round(first.ms),
      firstTimeoutStatus: first.status,
      stale: {
        p50: stale.p50,
        p99: stale.p99,
        rps: stale.rps,
        non2xx: stale.other,
        cpuMicrosPerRequest: Math.round(staleCpu),
      },
      staleP99OverNormal: round(stale.p99 / normal.p99),
      unknown: {
        samples: unknownLatencies.length,
        statuses: Object.fromEntries(unknownStatuses),
        p50: round(percentile(unknownLatencies, 50)),
        p99: round(percentile(unknownLatencies, 99)),
        max: round(Math.max(...unknownLatencies)),
      },
      unknownWithoutLoad: {
        samples: idleUnknown.length,
        p50: round(percentile(idleUnknown, 50)),
        p99: round(percentile(idleUnknown, 99)),
        max: round(Math.max(...idleUnknown)),
      },
      recoveryMs: Math.round(recoveryMs),
      sigterm: { exitCode: code, shutdownMs: Math.round(shutdownMs), served2xx: last.ok },
      rows: { served2xxAllPhases: served, countedInUsageRows: counted },
    },
    null,
    2,
  ),
);
