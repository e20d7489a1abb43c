/**
 * What the external suite shares: running commands with a clean environment, making throwaway
 * projects outside the repository and installing the packed tarballs into them with npm.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = path.join(ROOT, 'test/external/apps');
/** The repository's TypeScript compiler; what it checks comes from each project's own `node_modules`. */
export const TSC = path.join(
  path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')),
  'bin/tsc',
);

/** What `setup.ts` prepared for this run, shared with every test file. */
export interface ExternalRun {
  /** Scratch directory of this run, outside the repository; removed at the end. */
  dir: string;
  /** The packed tarball of each package, by package name. */
  tarballs: Record<string, string>;
  /** The Node.js binaries the apps run on: the machine's and the registry's `node` package's. */
  nodes: NodeBinary[];
}

export interface NodeBinary {
  /** Major version, e.g. `22`. */
  major: number;
  path: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    external: ExternalRun;
  }
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a process started by the suite: the test's own, without what the package
 * manager running the suite put in it (`npm_config_*` would reconfigure the npm inside) and
 * without Node options meant for the test process.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && name !== 'NODE_OPTIONS') env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs `command` to its end and collects its output; a run past `timeoutMs` is killed and fails. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CommandResult> {
  const { cwd, env = cleanEnv(), timeoutMs = 240_000 } = options;
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `run`, failing with the command's output unless it exits 0. */
export async function succeed(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CommandResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} (in ${options.cwd}) exited ${result.code}\n` +
        `${result.stdout}\n${result.stderr}`,
    );
  }
  return result;
}

/** `npm install` as a user runs it, quietly and without touching the registry's audit endpoint. */
export function npmInstall(cwd: string, specs: string[]): Promise<CommandResult> {
  return succeed('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
    cwd,
  });
}

/**
 * A new npm project in `dir` holding the fixture files of `fixtures` (a folder of `apps/`) and
 * the shared tsconfigs, with `specs` installed: tarball paths and registry packages.
 */
export async function createProject(
  dir: string,
  fixtures: string,
  specs: string[],
): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'package.json'),
    `${JSON.stringify({ name: path.basename(dir), private: true }, null, 2)}\n`,
  );
  await cp(path.join(FIXTURES, fixtures), dir, { recursive: true });
  for (const config of Object.values(TSCONFIGS)) {
    await cp(path.join(FIXTURES, config), path.join(dir, config));
  }
  await npmInstall(dir, specs);
  return dir;
}

/**
 * The shared tsconfigs, one TypeScript program each, as a project of that kind has it: the ESM
 * and the CommonJS app with `nodenext` (compiled into `build/`), the ESM app with `bundler`.
 * A program holding both formats would load keygate's `.d.mts` and `.d.cts` side by side.
 */
export const TSCONFIGS = {
  'nodenext, ESM (*.mts)': 'tsconfig.esm.json',
  'nodenext, CommonJS (*.cts)': 'tsconfig.cjs.json',
  'bundler (*.mts)': 'tsconfig.bundler.json',
} as const;

/** Type-checks a project with one of the shared tsconfigs, `options` overriding its own. */
export function typeCheck(
  dir: string,
  config: string,
  options: string[] = [],
): Promise<CommandResult> {
  return run(process.execPath, [TSC, '-p', config, ...options], { cwd: dir });
}
