/**
 * `pnpm bench:scan`: how fast `keygate scan` reads, in bytes per second of input, so a pre-commit
 * hook's cost can be told from the size of what it scans.
 *
 * - finder: `findKeys` over real source text (the JavaScript, TypeScript, JSON and Markdown of the
 *   workspace's installed packages), against the floor of one native search for a single prefix
 *   (`Buffer#indexOf`), rounds interleaved, medians reported with CPU time per MB;
 * - tree: `keygate scan DIR` end to end (walk, read, binary check, find) over that corpus written
 *   out as files (read from the page cache after the first round);
 * - history: `keygate scan --git` over this repository's whole history.
 *
 * BENCH_SCAN_MB (default 128): megabytes of corpus. BENCH_ROUNDS (default 5).
 */
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKeyFormat, findKeys } from '@keygate/core';
import { run } from 'keygate';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIMIT = Number(process.env.BENCH_SCAN_MB ?? 128) * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TEXT = /\.(c?m?js|ts|json|md)$/;

/** Source files of installed packages, up to the limit, with a few keys sprinkled in. */
function corpus(): Array<{ name: string; bytes: Buffer }> {
  const files: Array<{ name: string; bytes: Buffer }> = [];
  let total = 0;
  const format = createKeyFormat();
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (total >= LIMIT) return;
      const full = path.join(directory, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && TEXT.test(entry.name) && statSync(full).size < 4 * 1024 * 1024) {
        let bytes = readFileSync(full);
        if (files.length % 500 === 0) {
          bytes = Buffer.concat([
            bytes,
            Buffer.from(`\nconst key = "${format.generate('secret', 'live').secret}";\n`),
          ]);
        }
        files.push({ name: full.slice(ROOT.length + 1), bytes });
        total += bytes.length;
      }
    }
  };
  walk(path.join(ROOT, 'node_modules/.pnpm'));
  return files;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Wall and CPU time of `work`, in ms. */
function timed(work: () => void): { wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const start = performance.now();
  work();
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
}

async function timedAsync(
  work: () => Promise<unknown>,
): Promise<{ wallMs: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await work();
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
}

const mb = (bytes: number) => bytes / (1024 * 1024);
const rate = (bytes: number, ms: number) => `${(mb(bytes) / (ms / 1000)).toFixed(0)} MB/s`;

const files = corpus();
const bytes = files.reduce((sum, f) => sum + f.bytes.length, 0);
const format = createKeyFormat();
const needle = Buffer.from('sk_live_');
console.log(
  `corpus: ${files.length} files, ${mb(bytes).toFixed(1)} MB of installed packages' source`,
);

const finder: number[] = [];
const finderCpu: number[] = [];
const floor: number[] = [];
let keys = 0;
for (let round = 0; round < ROUNDS; round++) {
  const measured = timed(() => {
    keys = 0;
    for (const file of files) keys += findKeys(file.bytes, format).length;
  });
  finder.push(measured.wallMs);
  finderCpu.push(measured.cpuMs);
  floor.push(
    timed(() => {
      for (const file of files) file.bytes.indexOf(needle);
    }).wallMs,
  );
}
console.log(
  `finder:  ${rate(bytes, median(finder))} (${(median(finderCpu) / mb(bytes)).toFixed(2)} ms CPU per MB, ${keys} keys found); ` +
    `floor (one native search for one prefix): ${rate(bytes, median(floor))}; finder / floor: ${(median(floor) / median(finder)).toFixed(2)}`,
);

const tree = mkdtempSync(path.join(os.tmpdir(), 'keygate-bench-scan-'));
try {
  for (const [i, file] of files.entries()) {
    const target = path.join(
      tree,
      String(Math.floor(i / 200)),
      `${path.basename(file.name).replace(/^\.+/, '_')}.${i}`,
    );
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.bytes);
  }
  const io = {
    out: () => {},
    err: (text: string) => process.stderr.write(text),
    env: { DATABASE_URL: '' },
  };
  const treeRuns: number[] = [];
  const treeCpu: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const measured = await timedAsync(() => run(['scan', tree], io));
    treeRuns.push(measured.wallMs);
    treeCpu.push(measured.cpuMs);
  }
  console.log(
    `tree:    ${rate(bytes, median(treeRuns))} (${(median(treeCpu) / mb(bytes)).toFixed(2)} ms CPU per MB) — keygate scan over ${files.length} files`,
  );
} finally {
  rmSync(tree, { recursive: true, force: true });
}

const objects = execFileSync('git', ['-C', ROOT, 'count-objects', '-v'], { encoding: 'utf8' });
let historyOut = '';
const historyRuns: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  historyRuns.push(
    (
      await timedAsync(() =>
        run(['scan', '--git', ROOT, '--json'], {
          out: (text) => {
            historyOut = text;
          },
          err: () => {},
          env: { DATABASE_URL: '' },
        }),
      )
    ).wallMs,
  );
}
const scanned = JSON.parse(historyOut).scanned as { files: number; bytes: number };
console.log(
  `history: ${rate(scanned.bytes, median(historyRuns))} — keygate scan --git over ${scanned.files} blobs and commits (${mb(scanned.bytes).toFixed(1)} MB) of this repository` +
    ` (${objects.split('\n').find((l) => l.startsWith('size-pack')) ?? ''})`,
);
