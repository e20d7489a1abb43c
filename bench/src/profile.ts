import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) that self time needs. */
interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileFrame {
  functionName: string;
  /** Source file and line (bundled frames mapped back through the source map). */
  location: string;
  area: string;
  selfMs: number;
  /** Share of all non-idle samples. */
  share: number;
}

export interface ProfileSummary {
  /** Non-idle sampled time, ms. */
  busyMs: number;
  frames: ProfileFrame[];
  /** The heaviest frames in keygate's own code (core, adapters, store, limiter). */
  keygateFrames: ProfileFrame[];
  areas: Array<{ area: string; share: number }>;
  /** Share of non-idle samples with a keygate frame (core, adapter, store, limiter) on the stack: keygate and what it calls. */
  keygateInclusiveShare: number;
}

/** Which part of the stack a source file belongs to. */
function areaOf(path: string): string {
  const workspace = /(?:^|\/)packages\/([^/]+)\/src\//.exec(path);
  if (workspace) {
    const name = workspace[1]!;
    return name === 'core' ? 'keygate core' : `@keygate/${name}`;
  }
  if (path.includes('bench/src/')) return 'route handler (bench)';
  const modules = path.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const rest = path.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (path.startsWith('node:')) return 'node internals';
  return 'other';
}

/**
 * Self time per function of a CPU profile, frames of the bench's bundles (under `bundleDir`) mapped
 * back to their sources, with the
 * `top` heaviest frames and the share of each area (keygate core, adapter, ioredis, node, ...).
 */
export function summariseProfile(
  file: string,
  repoRoot: string,
  bundleDir: string,
  window: { fromUs: number; toUs: number } | null,
  top = 15,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const selfByNode = new Map<number, number>();
  // Sample times are on the monotonic clock, so start-up and warm-up can be left out.
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + delta / 1000);
  });

  const maps = new Map<string, SourceMap | null>();
  const sourceMapFor = (path: string): SourceMap | null => {
    if (!maps.has(path)) {
      const mapFile = `${path}.map`;
      maps.set(
        path,
        existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8'))) : null,
      );
    }
    return maps.get(path) ?? null;
  };

  const locate = (url: string, line: number, column: number): string => {
    if (!url.startsWith('file://')) return url ? `${url}:${line + 1}` : '';
    const path = fileURLToPath(url);
    // Only the bench's own bundles are mapped; installed packages are reported as installed.
    const bundled = path.startsWith(bundleDir);
    const entry = (bundled ? sourceMapFor(path)?.findEntry(line, column) : undefined) as
      | { originalSource?: string; originalLine?: number }
      | undefined;
    if (entry?.originalSource !== undefined && entry.originalLine !== undefined) {
      const source = entry.originalSource.startsWith('file://')
        ? fileURLToPath(entry.originalSource)
        : resolve(dirname(path), entry.originalSource);
      return `${relative(repoRoot, source)}:${entry.originalLine + 1}`;
    }
    return `${relative(repoRoot, path)}:${line + 1}`;
  };

  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const areaByNode = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    areaByNode.set(
      node.id,
      url
        ? areaOf(locate(url, lineNumber, columnNumber))
        : functionName.startsWith('(')
          ? functionName
          : 'V8 builtins',
    );
  }
  const underKeygate = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const area = areaByNode.get(at) ?? '';
      if (area === 'keygate core' || area.startsWith('@keygate/')) return true;
    }
    return false;
  };

  const frames = new Map<string, Omit<ProfileFrame, 'share'>>();
  let busyMs = 0;
  let keygateMs = 0;
  for (const node of profile.nodes) {
    const selfMs = selfByNode.get(node.id) ?? 0;
    if (selfMs === 0) continue;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    busyMs += selfMs;
    if (underKeygate(node.id)) keygateMs += selfMs;
    const location = locate(url, lineNumber, columnNumber);
    const name = functionName || '(anonymous)';
    const key = `${name}@${location}`;
    const area = areaByNode.get(node.id)!;
    const frame = frames.get(key) ?? { functionName: name, location, area, selfMs: 0 };
    frame.selfMs += selfMs;
    frames.set(key, frame);
  }

  const areaTotals = new Map<string, number>();
  for (const frame of frames.values()) {
    areaTotals.set(frame.area, (areaTotals.get(frame.area) ?? 0) + frame.selfMs);
  }
  const ranked = [...frames.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .map((frame) => ({ ...frame, share: frame.selfMs / busyMs }));
  return {
    busyMs,
    frames: ranked.slice(0, top),
    keygateFrames: ranked
      .filter((frame) => frame.area === 'keygate core' || frame.area.startsWith('@keygate/'))
      .slice(0, 10),
    areas: [...areaTotals]
      .map(([area, ms]) => ({ area, share: ms / busyMs }))
      .sort((a, b) => b.share - a.share),
    keygateInclusiveShare: keygateMs / busyMs,
  };
}
