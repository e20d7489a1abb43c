import type { Contestant } from './contestants.js';
import type { LoadTool } from './load.js';
import { type MeasuredLoad, median } from './measure.js';
import type { ProfileFrame, ProfileSummary } from './profile.js';
import type { LookupTiming } from './setup.js';

export interface RoundResult extends MeasuredLoad {
  round: number;
  peakRssMb: number;
  /** Lines the server wrote to stderr (warnings, errors). */
  serverLogLines: number;
  /** Redis commands run over the server's life, per request sent to it. */
  redisExecutedPerRequest: number;
  /** Postgres rows written (inserted, updated, deleted) over the server's life, per request; NaN when it uses no server Postgres. */
  postgresRowsPerRequest: number;
}

export interface ContestantResult {
  contestant: Contestant;
  rounds: RoundResult[];
}

export interface LatencySummary {
  label: string;
  samples: number;
  p50: number;
  p99: number;
}

export interface BenchReport {
  date: Date;
  elapsedSeconds: number;
  machine: { cpu: string; cores: number; memoryGb: number; os: string; node: string };
  loadAverageAtStart: number[];
  pinning: string;
  services: { postgres: string; redis: string };
  versions: Array<[string, string]>;
  settings: {
    connections: number;
    warmupSeconds: number;
    durationSeconds: number;
    rounds: number;
    keyPool: number;
  };
  results: ContestantResult[];
  sequential: LatencySummary[];
  /** The cold path: more distinct keys in traffic than a verification cache holds. */
  manyKeys: Array<{ contestant: Contestant; keys: number; run: Omit<RoundResult, 'round'> }>;
  loadTool: LoadTool;
  lookup: LookupTiming[];
  /** CPU profiles, each with what it is of (a contestant, warm or on the cold path). */
  profiles: Array<{ title: string; summary: ProfileSummary }>;
  profileSeconds: number;
  /** Commands sent to Redis per request (scripts counted once), by contestant id. */
  redisRoundTrips: Record<string, number>;
}

interface Medians {
  rps: number;
  cpu: number;
  p50: number;
  p99: number;
  rss: number;
  non2xx: number;
  logLines: number;
  redis: number;
  pgRows: number;
}

function mediansOf(result: ContestantResult): Medians {
  const of = (pick: (r: RoundResult) => number) => median(result.rounds.map(pick));
  return {
    rps: of((r) => r.requestsPerSecond),
    cpu: of((r) => r.cpuUsPerRequest),
    p50: of((r) => r.p50),
    p99: of((r) => r.p99),
    rss: of((r) => r.peakRssMb),
    non2xx: result.rounds.reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0),
    logLines: result.rounds.reduce((sum, r) => sum + r.serverLogLines, 0),
    redis: of((r) => r.redisExecutedPerRequest),
    pgRows: of((r) => r.postgresRowsPerRequest),
  };
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const pct = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : 'n/a');
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(n >= 10 ? 0 : 2)}×` : 'n/a');
const signedMs = (n: number) =>
  Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(2)}` : 'n/a';

function frameRow(f: ProfileFrame): string {
  return row([`\`${f.functionName}\``, `\`${f.location}\``, f.area, ms(f.selfMs, 0), pct(f.share)]);
}

function row(cells: Array<string | number>): string {
  return `| ${cells.join(' | ')} |`;
}

interface Target {
  name: string;
  goal: string;
  measured: string;
  met: boolean | null;
  shortfall: string;
}

function targets(report: BenchReport, medians: Map<string, Medians>): Target[] {
  const get = (id: string) => medians.get(id);
  const keygate = get('keygate-hono');
  const leased = get('keygate-hono-leased');
  const bare = get('bare-hono');
  const betterAuth = get('better-auth');
  const handRolled = get('hand-rolled');
  const handRolledHono = get('hand-rolled-hono');
  const list: Target[] = [];
  const atLeast = (name: string, goal: number, ratio: number, unit: 'share' | 'x') => {
    const met = ratio >= goal;
    list.push({
      name,
      goal: unit === 'share' ? `≥ ${pct(goal)}` : `≥ ${goal}×`,
      measured: unit === 'share' ? pct(ratio) : times(ratio),
      met,
      shortfall: met
        ? ''
        : unit === 'share'
          ? `${((goal - ratio) * 100).toFixed(1)} points short`
          : `${(goal / ratio).toFixed(2)}× short`,
    });
  };
  const atMost = (name: string, goal: number, value: number, show: (n: number) => string) => {
    const met = value <= goal;
    list.push({
      name,
      goal: `≤ ${show(goal)}`,
      measured: show(value),
      met,
      shortfall: met ? '' : `${show(value - goal)} over`,
    });
  };
  if (keygate && handRolledHono) {
    atLeast(
      'keygate (Hono, Postgres + Redis) vs hand-rolled Hono stack, req/s',
      0.85,
      keygate.rps / handRolledHono.rps,
      'x',
    );
    atMost(
      'keygate (Hono, Postgres + Redis) server CPU per request vs hand-rolled Hono stack',
      1.2,
      keygate.cpu / handRolledHono.cpu,
      (n) => `${n.toFixed(2)}×`,
    );
  }
  const coldKeygate = report.manyKeys.find((m) => m.contestant.id === 'keygate-hono');
  const coldHandRolled = report.manyKeys.find((m) => m.contestant.id === 'hand-rolled-hono');
  if (coldKeygate && coldHandRolled) {
    atLeast(
      `cold path (${int(coldKeygate.keys)} keys cycling) vs hand-rolled Hono stack, req/s`,
      1,
      coldKeygate.run.requestsPerSecond / coldHandRolled.run.requestsPerSecond,
      'x',
    );
  }
  const trips = (id: string) => report.redisRoundTrips[id] ?? Number.NaN;
  if (keygate) {
    atMost(
      'keygate (Hono, Postgres + Redis): Postgres rows written per successful request',
      0.01,
      keygate.pgRows,
      (n) => n.toFixed(4),
    );
    const off = Math.abs(trips('keygate-hono') - 1);
    list.push({
      name: 'keygate (Hono, Postgres + Redis): Redis commands sent per request',
      goal: '= 1',
      measured: trips('keygate-hono').toFixed(3),
      met: off <= 0.01,
      shortfall: off <= 0.01 ? '' : `${off.toFixed(3)} off`,
    });
  }
  if (leased && bare) {
    atLeast(
      'keygate (Hono, leased limits) vs bare Hono, req/s',
      0.8,
      leased.rps / bare.rps,
      'share',
    );
  }
  // For reference, not a goal: what the least a key layer does (`floor-hono`) leaves of bare Hono.
  const reference = (name: string, ratio: number) =>
    list.push({ name, goal: 'reference', measured: pct(ratio), met: null, shortfall: '' });
  const floor = get('floor-hono');
  if (floor && bare) {
    reference(
      'the floor (SHA-256, a Map, five headers, a scope check) vs bare Hono, req/s',
      floor.rps / bare.rps,
    );
  }
  if (floor && leased) {
    reference('keygate (Hono, leased limits) vs the floor, req/s', leased.rps / floor.rps);
  }
  if (leased) {
    atMost(
      'keygate (Hono, leased limits): Redis commands sent per request',
      0.05,
      trips('keygate-hono-leased'),
      (n) => n.toFixed(3),
    );
  }
  if (keygate && bare) {
    atLeast(
      'keygate (Hono, Postgres + Redis, exact limits) vs bare Hono, req/s',
      0.8,
      keygate.rps / bare.rps,
      'share',
    );
  }
  if (keygate && betterAuth) {
    atLeast(
      'keygate (Hono, Postgres + Redis) vs better-auth API-key peer, req/s',
      20,
      keygate.rps / betterAuth.rps,
      'x',
    );
  }
  if (keygate && handRolled) {
    atLeast(
      'keygate (Hono, Postgres + Redis) vs hand-rolled Express stack, req/s',
      1.7,
      keygate.rps / handRolled.rps,
      'x',
    );
  }
  if (keygate && bare) {
    const added = keygate.p99 - bare.p99;
    list.push({
      name: `p99 added over bare Hono, under load (${report.settings.connections} connections)`,
      goal: '≤ 1 ms',
      measured: `${signedMs(added)} ms`,
      met: added <= 1,
      shortfall: added <= 1 ? '' : `${(added - 1).toFixed(2)} ms over`,
    });
  }
  const bareSeq = report.sequential.find((s) => s.label.startsWith('bare'));
  const warmSeq = report.sequential.find((s) => s.label.includes('cache hit'));
  if (bareSeq && warmSeq) {
    const added = warmSeq.p99 - bareSeq.p99;
    list.push({
      name: 'p99 added over bare Hono, one request at a time',
      goal: '≤ 1 ms',
      measured: `${signedMs(added)} ms (p50: ${signedMs(warmSeq.p50 - bareSeq.p50)} ms)`,
      met: added <= 1,
      shortfall: added <= 1 ? '' : `${(added - 1).toFixed(2)} ms over`,
    });
  }
  const first = report.lookup[0];
  const last = report.lookup.at(-1);
  if (first && last && last !== first) {
    const growth = last.p50 / first.p50;
    list.push({
      name: `key lookup p50, ${int(first.keys)} → ${int(last.keys)} keys`,
      goal: 'flat (≤ 1.5× growth)',
      measured: `${ms(first.p50, 3)} → ${ms(last.p50, 3)} ms (${times(growth)})`,
      met: growth <= 1.5,
      shortfall: growth <= 1.5 ? '' : `grows ${times(growth)}`,
    });
  }
  return list;
}

export const ANALYSIS_START = '<!-- analysis:start -->';
export const ANALYSIS_END = '<!-- analysis:end -->';

/** The hand-written analysis in a previous report (markers included), kept when the report is regenerated. */
export function analysisOf(previous: string): string | null {
  const start = previous.indexOf(ANALYSIS_START);
  const end = previous.indexOf(ANALYSIS_END);
  return start >= 0 && end > start ? previous.slice(start, end + ANALYSIS_END.length) : null;
}

export function renderReport(report: BenchReport, analysis: string | null): string {
  const medians = new Map(report.results.map((r) => [r.contestant.id, mediansOf(r)]));
  const s = report.settings;
  const lines: string[] = [];
  const push = (...more: string[]) => lines.push(...more);

  push(
    '# Benchmarks',
    '',
    `Produced by \`pnpm bench\` (\`bench/src/run.ts\`) on ${report.date.toISOString().slice(0, 16).replace('T', ' ')} UTC in ${Math.round(report.elapsedSeconds / 60)} min. Everything but the Analysis section is generated; the analysis is written by hand and kept across runs, so check it against new figures.`,
    '',
    '## Setup',
    '',
    `- **Machine:** ${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.memoryGb.toFixed(1)} GB RAM, ${report.machine.os}; Node ${report.machine.node}. Load average when the run started: ${report.loadAverageAtStart.map((n) => n.toFixed(2)).join(', ')}.`,
    `- **Services:** Postgres ${report.services.postgres} and Redis ${report.services.redis} on the same machine (not pinned; they share the two cores with the server and the load generator).`,
    `- **Pinning:** ${report.pinning}.`,
    `- **Versions:** ${report.versions.map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    `- **Workload:** \`GET /v1/websites/w_1/analytics\`, one server process per contestant; ${s.keyPool.toLocaleString('en-US')} keys per contestant sent in turn in \`x-api-key\`; ${report.loadTool === 'wrk' ? 'wrk (one thread)' : 'autocannon'} in its own process, ${s.connections} connections; each key is sent once first (so the verification cache is warm: the cold path is measured below), then ${s.warmupSeconds} s warm-up and ${s.durationSeconds} s measured; ${s.rounds} round(s), contestants interleaved (order rotated each round). Figures are medians over the rounds; latencies are measured by the load generator at sub-millisecond resolution (${report.loadTool === 'wrk' ? 'of every response' : 'of 2xx responses'}); peak RSS is the server's \`VmHWM\` at the end of the run. Redis commands and Postgres rows written are counted over each server's whole life (\`INFO commandstats\`, \`pg_stat_user_tables\` of the bench database: rows inserted, updated or deleted), from before it starts to after it has stopped and flushed, divided by every request sent to it (priming and warm-up included).`,
    "- **Contestants:** every server answers the same route with the same body. keygate servers use `apiKeyAuth` + `requireScope('read:data', { resource: 'website:{websiteId}' })` with the audit trail on (2 events per request, batched to the key store) and the default rate-limit tiers; better-auth verifies each request with `auth.api.verifyApiKey({ key, permissions })` (its per-key rate limit on, limit 10⁹/min); the hand-rolled Express stack looks up the SHA-256 digest in Postgres with `postgres` on every request, then runs express-rate-limit on rate-limit-redis (limit 10⁹/min) and a scope check; the hand-rolled Hono stack (what a platform team writes in an afternoon) keeps verified keys in an lru-cache (10,000 keys, 30 s, as keygate's cache), looks up the SHA-256 digest with `postgres` on a miss, runs rate-limiter-flexible on Redis (one round trip, limit 10⁹/min, `X-RateLimit-*` headers) and a scope and resource check. No limit is reached.",
    '',
    `## Throughput and latency (${s.connections} connections)`,
    '',
    row([
      'contestant',
      'req/s',
      'vs bare',
      'p50 ms',
      'p99 ms',
      'p99 over bare, ms',
      'server CPU µs/req',
      'CPU over bare, µs/req',
      'peak RSS MB',
      'Redis cmds sent/req',
      'Redis cmds run/req',
      'PG rows/req',
      'req/s vs hand-rolled hono',
      'non-2xx/errors',
      'req/s per round',
    ]),
    row(Array(15).fill('---')),
  );
  const handRolledHono = medians.get('hand-rolled-hono');
  for (const result of report.results) {
    const m = medians.get(result.contestant.id)!;
    const base = medians.get(result.contestant.baseline);
    const isBare = result.contestant.kind === 'bare';
    push(
      row([
        isBare ? `**${result.contestant.label}**` : result.contestant.label,
        int(m.rps),
        isBare || !base ? '—' : pct(m.rps / base.rps),
        ms(m.p50),
        ms(m.p99),
        isBare || !base ? '—' : signedMs(m.p99 - base.p99),
        int(m.cpu),
        isBare || !base ? '—' : int(m.cpu - base.cpu),
        ms(m.rss, 0),
        ms(report.redisRoundTrips[result.contestant.id] ?? Number.NaN, 3),
        ms(m.redis, 3),
        ms(m.pgRows, 4),
        result.contestant.framework === 'hono' && handRolledHono && !isBare
          ? times(m.rps / handRolledHono.rps)
          : '—',
        String(m.non2xx),
        result.rounds.map((r) => int(r.requestsPerSecond)).join(' / '),
      ]),
    );
  }
  push(
    '',
    "Server CPU is the server process's user + system time over the measured run divided by its requests (from `/proc/<pid>/stat`); it leaves out the work Postgres and Redis do for it, and it is far less sensitive than req/s to other load on the machine. *Redis cmds sent* counts the commands the server sent (a script invocation is one), from `MONITOR` in a separate run (10 s counted after priming and warm-up, so at bench load: a leased server's first lease of each key is left out); *Redis cmds run* is from `INFO commandstats`, which also counts every command a script runs.",
  );
  const logLines = report.results.filter((r) => mediansOf(r).logLines > 0);
  if (logLines.length > 0) {
    push(
      '',
      `Servers that wrote to stderr during their runs (see the logs under \`.bench-tmp/logs\`): ${logLines.map((r) => `${r.contestant.id} (${mediansOf(r).logLines} lines)`).join(', ')}.`,
    );
  }

  push(
    '',
    '## Targets',
    '',
    row(['target', 'goal', 'measured', 'result']),
    row(Array(4).fill('---')),
  );
  for (const target of targets(report, medians)) {
    push(
      row([
        target.name,
        target.goal,
        target.measured,
        target.met === null ? '—' : target.met ? 'met' : `**missed**: ${target.shortfall}`,
      ]),
    );
  }

  push(
    '',
    analysis ??
      [
        ANALYSIS_START,
        '## Analysis',
        '',
        'None yet: write it here; `pnpm bench` keeps this section.',
        ANALYSIS_END,
      ].join('\n'),
  );

  if (report.sequential.length > 0) {
    push(
      '',
      '## One request at a time',
      '',
      'Requests sent one after another on one kept-alive connection from the orchestrator, so nothing queues: the cost of a single request. The cold path uses keys never seen by the server, so each request misses the verification cache and costs one Postgres lookup.',
      '',
      row(['server', 'requests', 'p50 ms', 'p99 ms']),
      row(Array(4).fill('---')),
      ...report.sequential.map((l) => row([l.label, int(l.samples), ms(l.p50, 3), ms(l.p99, 3)])),
    );
  }

  if (report.lookup.length > 0) {
    push(
      '',
      '## Key lookup as the table grows',
      '',
      '`PostgresKeyStore.findByDigest` timed in-process on random existing digests (sequential, after 200 warm-up lookups), in a dedicated database filled with random digests by `INSERT ... SELECT generate_series`.',
      '',
      row(['keys in table', 'lookups', 'p50 ms', 'p99 ms', 'mean ms']),
      row(Array(5).fill('---')),
      ...report.lookup.map((t) =>
        row([int(t.keys), int(t.samples), ms(t.p50, 3), ms(t.p99, 3), ms(t.mean, 3)]),
      ),
    );
  }

  if (report.manyKeys.length > 0) {
    const keys = report.manyKeys[0]!.keys;
    push(
      '',
      `## The cold path: ${int(keys)} distinct keys in traffic`,
      '',
      `${int(keys)} more keys inserted straight into each stack's table, and requests cycling through all of them (${s.connections} connections, ${s.durationSeconds} s after warm-up, no priming). Both verification caches hold 10,000 keys, so nearly every request misses and costs a Postgres lookup; keygate's peak RSS also shows its cache stays bounded. The ${int(s.keyPool)}-key rows are the warm medians above.`,
      '',
      row([
        'contestant',
        'keys in traffic',
        'req/s',
        'p99 ms',
        'server CPU µs/req',
        'peak RSS MB',
        'Redis cmds run/req',
        'PG rows/req',
        'non-2xx/errors',
      ]),
      row(Array(9).fill('---')),
    );
    for (const { contestant, run } of report.manyKeys) {
      const warm = medians.get(contestant.id);
      if (warm) {
        push(
          row([
            contestant.label,
            int(s.keyPool),
            int(warm.rps),
            ms(warm.p99),
            int(warm.cpu),
            ms(warm.rss, 0),
            ms(warm.redis, 3),
            ms(warm.pgRows, 4),
            String(warm.non2xx),
          ]),
        );
      }
      push(
        row([
          contestant.label,
          int(keys),
          int(run.requestsPerSecond),
          ms(run.p99),
          int(run.cpuUsPerRequest),
          ms(run.peakRssMb, 0),
          ms(run.redisExecutedPerRequest, 3),
          ms(run.postgresRowsPerRequest, 4),
          String(run.non2xx + run.errors + run.timeouts),
        ]),
      );
    }
  }

  for (const { title, summary: p } of report.profiles) {
    push(
      '',
      `## Profile: ${title}`,
      '',
      `\`node --cpu-prof\` on the server during a ${report.profileSeconds} s measured run at ${s.connections} connections (samples from start-up, priming and warm-up left out); ${int(p.busyMs)} ms of non-idle samples. Frames are mapped back to their sources. ${pct(p.keygateInclusiveShare)} of the busy samples have a keygate frame on their synchronous stack (keygate and what it calls synchronously; replies handled after an \`await\`, such as ioredis parsing the limiter's answer, are outside it).`,
      '',
      'Self time by area:',
      '',
      row(['area', 'share of busy time']),
      row(['---', '---']),
      ...p.areas.slice(0, 12).map((a) => row([a.area, pct(a.share)])),
      '',
      'Heaviest frames by self time:',
      '',
      row(['function', 'where', 'area', 'self ms', 'share']),
      row(Array(5).fill('---')),
      ...p.frames.map(frameRow),
      '',
      "keygate's own heaviest frames (core, adapter, store, limiter):",
      '',
      row(['function', 'where', 'area', 'self ms', 'share']),
      row(Array(5).fill('---')),
      ...p.keygateFrames.map(frameRow),
    );
  }

  push('');
  return lines.join('\n');
}
