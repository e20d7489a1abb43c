import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { LoadConfig, LoadResult } from './load.js';

/** Command prefixes that pin the server and the load generator to different cores. */
export interface Pinning {
  server: string[];
  load: string[];
  description: string;
}

export function detectPinning(): Pinning {
  const cores = availableParallelism();
  const taskset =
    process.platform === 'linux' &&
    cores >= 2 &&
    spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' }).status === 0;
  if (!taskset) {
    return {
      server: [],
      load: [],
      description: `not pinned (${cores} core(s)${process.platform === 'linux' ? ', no usable taskset' : ''})`,
    };
  }
  return {
    server: ['taskset', '-c', '0'],
    load: ['taskset', '-c', '1'],
    description: 'server on core 0, load generator on core 1 (`taskset`)',
  };
}

function command(pin: readonly string[], args: string[]): [string, string[]] {
  const full = [...pin, process.execPath, ...args];
  return [full[0]!, full.slice(1)];
}

export interface RunningServer {
  pid: number;
  port: number;
  /** CPU time (user + system, all threads) used so far, in seconds; `NaN` without `/proc`. */
  cpuSeconds(): number;
  /** Peak resident set size so far (`VmHWM`), in MB; `NaN` where `/proc` is not available. */
  peakRssMb(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited and its log is written. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServerLaunch {
  file: string;
  env: Record<string, string>;
  pin: readonly string[];
  logFile: string;
  nodeArgs?: string[];
  cwd?: string;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Spawns a server entry point and waits for its `READY port=N` line. */
export function startServer(launch: ServerLaunch): Promise<RunningServer> {
  const [cmd, args] = command(launch.pin, [...(launch.nodeArgs ?? []), launch.file]);
  const child = spawn(cmd, args, {
    cwd: launch.cwd,
    env: { ...process.env, NODE_ENV: 'production', ...launch.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(launch.logFile);
  child.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    let buffered = '';
    let ready = false;
    const timer = setTimeout(() => fail(new Error('no READY line within 60 s')), 60_000);
    function fail(error: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${launch.file}: ${error.message} (log: ${launch.logFile})`));
    }
    child.once('exit', (code, signal) => fail(new Error(`exited early (${code ?? signal})`)));
    child.stdout.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (ready) return;
      buffered += chunk.toString();
      const match = /READY port=(\d+)/.exec(buffered);
      if (!match) return;
      ready = true;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const pid = child.pid!;
      let stopping: Promise<void> | undefined;
      resolve({
        pid,
        port: Number(match[1]),
        peakRssMb: () => peakRssMb(pid),
        cpuSeconds: () => cpuSeconds(pid),
        stop(graceMs = 60_000) {
          stopping ??= (async () => {
            child.kill('SIGTERM');
            const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            await exited(child);
            clearTimeout(killer);
            await new Promise<void>((done) => log.end(done));
          })();
          return stopping;
        },
      });
    });
  });
}

let clockTicks: number | undefined;

function cpuSeconds(pid: number): number {
  try {
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

function peakRssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface MeasuredLoad extends LoadResult {
  /** The server's CPU time over the measured run divided by its requests, in µs. */
  cpuUsPerRequest: number;
}

/** The start and the end of the measured run, as the load generator announces them. */
export type LoadPhase = 'measure-start' | 'measure-end';

/**
 * Runs the load generator in its own process; samples the server's CPU time around the measured
 * run, and tells `onPhase` (if given) when it starts and ends.
 */
export function runLoad(
  loadFile: string,
  config: LoadConfig,
  pin: readonly string[],
  configFile: string,
  server: Pick<RunningServer, 'cpuSeconds'>,
  onPhase?: (phase: LoadPhase) => void,
): Promise<MeasuredLoad> {
  writeFileSync(configFile, JSON.stringify(config));
  const [cmd, args] = command(pin, [loadFile, configFile]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  let pending = '';
  let cpuAtStart = Number.NaN;
  let cpuAtEnd = Number.NaN;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'PHASE measure-start') {
        cpuAtStart = server.cpuSeconds();
        onPhase?.('measure-start');
      }
      if (line === 'PHASE measure-end') {
        cpuAtEnd = server.cpuSeconds();
        onPhase?.('measure-end');
      }
    }
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = output.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`load generator failed (exit ${code}): ${output.slice(-500)}`));
        return;
      }
      // JSON has no NaN: percentiles of a run without a 2xx response arrive as null.
      const result = JSON.parse(line) as LoadResult;
      resolve({
        ...result,
        p50: result.p50 ?? Number.NaN,
        p99: result.p99 ?? Number.NaN,
        cpuUsPerRequest: ((cpuAtEnd - cpuAtStart) * 1e6) / result.requests,
      });
    });
  });
}

/**
 * Latencies (ms) of `count` requests sent one at a time on one kept-alive connection, each with
 * the next key from `keys`: what one request costs when nothing queues.
 */
export async function sequentialLatencies(
  url: string,
  keys: readonly string[],
  count: number,
): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const key = keys.length > 0 ? keys[i % keys.length] : undefined;
      const started = performance.now();
      const status = await get(url, agent, key);
      times.push(performance.now() - started);
      if (status !== 200) throw new Error(`GET ${url} answered ${status}`);
    }
  } finally {
    agent.destroy();
  }
  return times;
}

function get(url: string, agent: Agent, key: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: key ? { 'x-api-key': key } : {} }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
