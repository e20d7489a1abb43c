/**
 * The load generator, run by the orchestrator in its own process (pinned to its own core when
 * possible): a warm-up, then the measured run between `PHASE measure-start` and `PHASE measure-end`
 * lines, then one JSON `LoadResult` line on stdout.
 * Usage: `node load.mjs <config.json>`.
 *
 * The warm-up and the measured run use wrk when it is installed (a C event loop: it leaves more
 * of its core to Redis and Postgres than a Node generator does) and autocannon otherwise.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export type LoadTool = 'wrk' | 'autocannon';

export interface LoadConfig {
  url: string;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** A file with one API key per line, sent in `x-api-key` in rotation; none: no key. */
  keysFile?: string;
  /**
   * Before the warm-up, send every key once, so the measured run sees a warm verification cache
   * whatever the throughput (the cold path is measured on its own). Default `true`.
   */
  primeKeys?: boolean;
  tool: LoadTool;
  /** wrk's Lua script (`wrk-script.ts`), written by the orchestrator. */
  wrkScript?: string;
}

export interface LoadResult {
  tool: LoadTool;
  requestsPerSecond: number;
  /** Latencies in ms, at sub-millisecond resolution: of 2xx responses (autocannon) or of all (wrk). */
  p50: number;
  p99: number;
  requests: number;
  /** Every request this generator sent: priming, warm-up and measured run. */
  requestsSent: number;
  /** Responses that were not 2xx (wrk counts 4xx and 5xx only). */
  non2xx: number;
  errors: number;
  timeouts: number;
  /** The measured run on the monotonic clock (µs), which V8's CPU profiles also use. */
  measuredFromUs: number;
  measuredToUs: number;
}

interface Run {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

const config = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as LoadConfig;
const keys = config.keysFile
  ? readFileSync(config.keysFile, 'utf8').split('\n').filter(Boolean)
  : [];
const { pathname } = new URL(config.url);
// One counter across connections, so every key is used in turn whatever the concurrency.
let next = Math.floor(Math.random() * Math.max(keys.length, 1));

function withNextKey(request: autocannon.Request): autocannon.Request {
  const key = keys[next++ % keys.length]!;
  return { ...request, headers: { ...request.headers, 'x-api-key': key } };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function runAutocannon(length: { seconds: number } | { requests: number }): Promise<Run> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: config.url,
        connections: config.connections,
        ...('seconds' in length ? { duration: length.seconds } : { amount: length.requests }),
        requests: [
          keys.length > 0
            ? { method: 'GET', path: pathname, setupRequest: withNextKey }
            : { method: 'GET', path: pathname },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        const sorted = Float64Array.from(latencies).sort();
        resolve({
          requests: result.requests.total,
          seconds: result.duration,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
        });
      },
    );
    // autocannon's histogram keeps whole milliseconds; the event carries the exact duration
    // (its typings omit the client, the event's first argument).
    const onResponse = (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    };
    instance.on('response', onResponse as never);
  });
}

function runWrk(seconds: number): Promise<Run> {
  const child = spawn(
    'wrk',
    [
      '-t1',
      `-c${config.connections}`,
      `-d${seconds}s`,
      '--timeout',
      '10s',
      '-s',
      config.wrkScript!,
      config.url,
    ],
    {
      env: { ...process.env, BENCH_KEYS_FILE: config.keysFile ?? '', BENCH_PATH: pathname },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = output.split('\n').find((l) => l.startsWith('WRK '));
      if (code !== 0 || !line) return reject(new Error(`wrk failed (exit ${code}): ${output}`));
      const s = JSON.parse(line.slice(4)) as Record<string, number>;
      resolve({
        requests: s.requests!,
        seconds: s.durationUs! / 1e6,
        p50: s.p50Us! / 1000,
        p99: s.p99Us! / 1000,
        non2xx: s.status!,
        errors: s.connect! + s.read! + s.write!,
        timeouts: s.timeout!,
      });
    });
  });
}

const timedRun = (seconds: number) =>
  config.tool === 'wrk' ? runWrk(seconds) : runAutocannon({ seconds });

let requestsSent = 0;
if (keys.length > 0 && config.primeKeys !== false) {
  requestsSent += (await runAutocannon({ requests: keys.length })).requests;
}
if (config.warmupSeconds > 0) requestsSent += (await timedRun(config.warmupSeconds)).requests;
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
// The orchestrator samples the server's CPU time when it reads these lines.
console.log('PHASE measure-start');
const measuredFromUs = monotonicUs();
const measured = await timedRun(config.durationSeconds);
const measuredToUs = monotonicUs();
console.log('PHASE measure-end');
requestsSent += measured.requests;
const output: LoadResult = {
  tool: config.tool,
  requestsPerSecond: measured.requests / measured.seconds,
  p50: measured.p50,
  p99: measured.p99,
  requests: measured.requests,
  requestsSent,
  non2xx: measured.non2xx,
  errors: measured.errors,
  timeouts: measured.timeouts,
  measuredFromUs,
  measuredToUs,
};
console.log(JSON.stringify(output));
