/**
 * The load generator, run by the orchestrator in its own process (pinned to its own core when
 * possible): a warm-up, then the measured run between `PHASE measure-start` and `PHASE measure-end`
 * lines, then one JSON `LoadResult` line on stdout.
 * Usage: `node load.mjs <config.json>`.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

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
}

export interface LoadResult {
  requestsPerSecond: number;
  /** Latencies of 2xx responses, in ms, at sub-millisecond resolution. */
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Responses by status code. */
  statusCodes: Record<string, number>;
  /** The measured run on the monotonic clock (µs), which V8's CPU profiles also use. */
  measuredFromUs: number;
  measuredToUs: number;
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

function run(
  length: { seconds: number } | { requests: number },
  latencies?: number[],
): Promise<autocannon.Result> {
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
      (error, result) => (error ? reject(error) : resolve(result)),
    );
    if (!latencies) return;
    // autocannon's histogram keeps whole milliseconds; the event carries the exact duration
    // (its typings omit the client, the event's first argument).
    const onResponse = (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    };
    instance.on('response', onResponse as never);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

if (keys.length > 0 && config.primeKeys !== false) await run({ requests: keys.length });
if (config.warmupSeconds > 0) await run({ seconds: config.warmupSeconds });
const latencies: number[] = [];
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
// The orchestrator samples the server's CPU time when it reads these lines.
console.log('PHASE measure-start');
const measuredFromUs = monotonicUs();
const result = await run({ seconds: config.durationSeconds }, latencies);
const measuredToUs = monotonicUs();
console.log('PHASE measure-end');
const sorted = Float64Array.from(latencies).sort();
const output: LoadResult = {
  requestsPerSecond: result.requests.total / result.duration,
  p50: percentile(sorted, 50),
  p99: percentile(sorted, 99),
  requests: result.requests.total,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  statusCodes: {},
  measuredFromUs,
  measuredToUs,
};
for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
  output.statusCodes[code] = stats?.count ?? 0;
}
console.log(JSON.stringify(output));
