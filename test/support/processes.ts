/**
 * The black-box surface as separate processes: reference-app servers and the `keygate` CLI,
 * both run from source with tsx exactly as `pnpm start` and `pnpm keygate` run them.
 *
 * Call `stopAppProcesses()` in `afterAll`: it stops every app process the file started (by
 * PID), even one a failed `beforeAll` never handed back; any left are killed when the test
 * process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_BIN = path.join(ROOT, 'packages/cli/src/bin.ts');

const running = new Set<ChildProcess>();
const stops = new Set<() => Promise<void>>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Stops every app process this test file started, including one whose start a failure left unassigned. */
export async function stopAppProcesses(): Promise<void> {
  await Promise.allSettled([...stops].map((stop) => stop()));
}

/** `node --import tsx <script>`: one process (the `tsx` binary would add a wrapper around it). */
function spawnTsx(script: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface AppProcess {
  framework: 'hono' | 'express' | 'koa';
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  pid: number;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /** SIGTERM (the app flushes and closes); resolves once it has exited, rejects if it had to be killed after 30 s. */
  stop(): Promise<void>;
  /** Sends `signal` (by PID) and nothing else. */
  signal(signal: NodeJS.Signals): void;
  /** How the process ended, once it has. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `examples/<framework>/src/server.ts` on a free port with `env` (e.g. `DATABASE_URL`,
 * `REDIS_URL`) and resolves once it has logged that it is listening.
 */
export async function startAppProcess(
  framework: AppProcess['framework'],
  env: NodeJS.ProcessEnv,
): Promise<AppProcess> {
  const child = spawnTsx(path.join(ROOT, `examples/${framework}/src/server.ts`), [], {
    PORT: '0',
    HOST: '127.0.0.1',
    ...env,
  });
  running.add(child);
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const exited = ended.then(() => undefined);
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    // Generous: a loaded CI machine may take a while to transpile and start the app.
    const timer = setTimeout(() => fail(new Error('did not start within 60 s')), 60_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${framework} app: ${error.message}\n${output}`));
    };
    const onExit = (code: number | null) => fail(new Error(`exited with code ${code}`));
    child.once('error', fail);
    child.once('exit', onExit);
    const watch = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /listening on http:\/\/localhost:(\d+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        child.off('error', fail);
        child.off('exit', onExit);
        resolve(Number(listening[1]));
      }
    };
    child.stdout?.on('data', watch);
    child.stderr?.on('data', watch);
  });
  const stop = async () => {
    let killed = false;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      // Generous: a graceful stop flushes the audit trail and usage, which a loaded machine slows.
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, 30_000);
      await exited;
      clearTimeout(timer);
    }
    stops.delete(stop);
    if (killed) {
      throw new Error(
        `${framework} app did not stop within 30 s of SIGTERM and was killed (what it had not flushed is lost)\n${output}`,
      );
    }
  };
  stops.add(stop);
  return {
    framework,
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    output: () => output,
    stop,
    signal: (signal) => {
      child.kill(signal);
    },
    exited: ended,
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `keygate` binary with `args` and `env` and collects its output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  // The CLI reads these; the test process's own values must not leak into it.
  const child = spawnTsx(CLI_BIN, args, { DATABASE_URL: '', REDIS_URL: '', ...env });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keygate ${args.join(' ')} did not finish within 60 s\n${stderr}`));
    }, 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
