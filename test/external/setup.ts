/**
 * Before the external suite: pack every package as it would be published (`pnpm pack` applies
 * `publishConfig` and turns `workspace:*` into versions) and fetch the Node.js 22 and 24 binaries
 * from the registry's `node` package, all into one scratch directory outside the repository.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { type ExternalRun, type NodeBinary, npmInstall, ROOT, succeed } from './support.js';

/** The Node.js lines tested besides the machine's own. */
const OTHER_NODE_MAJORS = [22, 24];

/** pnpm as the suite was started with it (`pnpm test`), or the version the repository names. */
function pnpm(): { command: string; args: string[] } {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(path.basename(execPath))) {
    return { command: process.execPath, args: [execPath] };
  }
  return { command: 'npx', args: ['--yes', 'pnpm@10.34.8'] };
}

async function packPackages(destination: string): Promise<Record<string, string>> {
  await mkdir(destination);
  const packagesDir = path.join(ROOT, 'packages');
  const dirs = (await readdir(packagesDir)).map((name) => path.join(packagesDir, name));
  const { command, args } = pnpm();
  const packed = await Promise.all(
    dirs.map(async (dir) => {
      const manifest = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as {
        name: string;
        version: string;
      };
      if (!existsSync(path.join(dir, 'dist'))) {
        throw new Error(`${manifest.name} is not built: run \`pnpm build\` first`);
      }
      await succeed(command, [...args, 'pack', '--pack-destination', destination], { cwd: dir });
      const file = `${manifest.name.replace('@', '').replace('/', '-')}-${manifest.version}.tgz`;
      return [manifest.name, path.join(destination, file)] as const;
    }),
  );
  return Object.fromEntries(packed);
}

async function installNode(dir: string, major: number): Promise<NodeBinary> {
  const home = path.join(dir, `node${major}`);
  await mkdir(home);
  await npmInstall(home, [`node@${major}`]);
  const binary = path.join(home, 'node_modules/.bin/node');
  const { stdout } = await succeed(binary, ['--version'], { cwd: home });
  if (!stdout.startsWith(`v${major}.`)) {
    throw new Error(`node@${major} from the registry is ${stdout.trim()}`);
  }
  return { major, path: binary };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keygate-external-'));
  const teardown = () => rm(dir, { recursive: true, force: true });
  try {
    const [tarballs, ...others] = await Promise.all([
      packPackages(path.join(dir, 'tarballs')),
      ...OTHER_NODE_MAJORS.map((major) => installNode(dir, major)),
    ]);
    const machine = { major: Number(process.versions.node.split('.')[0]), path: process.execPath };
    const external: ExternalRun = { dir, tarballs, nodes: [machine, ...others] };
    project.provide('external', external);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
