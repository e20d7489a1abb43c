export type Framework = 'hono' | 'express' | 'koa';

export interface Contestant {
  id: string;
  label: string;
  framework: Framework;
  kind: 'bare' | 'keygate' | 'peer';
  /** Bundle name under `servers/`. */
  server: string;
  /** The contestant's ceiling: the bare framework it runs on. */
  baseline: string;
  /** Which pool of keys its requests carry (none for the bare frameworks). */
  keys: 'none' | 'keygate-postgres' | 'keygate-embedded' | 'better-auth' | 'hand-rolled';
  backends: 'none' | 'postgres+redis' | 'postgres' | 'embedded';
  /** Extra environment for the server. */
  env?: Record<string, string>;
  /** Not a contestant users would deploy: a variant that prices one feature. */
  diagnostic?: boolean;
}

const FRAMEWORKS: Framework[] = ['hono', 'express', 'koa'];

export const CONTESTANTS: Contestant[] = [
  ...FRAMEWORKS.map(
    (framework): Contestant => ({
      id: `bare-${framework}`,
      label: `bare ${framework} (no auth)`,
      framework,
      kind: 'bare',
      server: `bare-${framework}`,
      baseline: `bare-${framework}`,
      keys: 'none',
      backends: 'none',
    }),
  ),
  ...FRAMEWORKS.map(
    (framework): Contestant => ({
      id: `keygate-${framework}`,
      label: `keygate on ${framework}, Postgres + Redis`,
      framework,
      kind: 'keygate',
      server: `keygate-${framework}`,
      baseline: `bare-${framework}`,
      keys: 'keygate-postgres',
      backends: 'postgres+redis',
    }),
  ),
  ...FRAMEWORKS.map(
    (framework): Contestant => ({
      id: `keygate-${framework}-embedded`,
      label: `keygate on ${framework}, embedded (PGlite + memory)`,
      framework,
      kind: 'keygate',
      server: `keygate-${framework}`,
      baseline: `bare-${framework}`,
      keys: 'keygate-embedded',
      backends: 'embedded',
    }),
  ),
  {
    id: 'keygate-hono-leased',
    label: 'keygate on hono, Postgres + Redis, leased limits',
    framework: 'hono',
    kind: 'keygate',
    server: 'keygate-hono',
    baseline: 'bare-hono',
    keys: 'keygate-postgres',
    backends: 'postgres+redis',
    env: { KEYGATE_BENCH_LIMITS: 'leased' },
  },
  {
    id: 'floor-hono',
    label:
      'diagnostic: the floor on hono, each request answered as it is read (SHA-256, a Map, five headers, a scope check)',
    framework: 'hono',
    kind: 'peer',
    server: 'floor-hono',
    baseline: 'bare-hono',
    keys: 'keygate-postgres',
    backends: 'postgres',
    diagnostic: true,
  },
  {
    id: 'keygate-hono-no-audit',
    label: 'diagnostic: keygate on hono, Postgres + Redis, audit trail off',
    framework: 'hono',
    kind: 'keygate',
    server: 'keygate-hono',
    baseline: 'bare-hono',
    keys: 'keygate-postgres',
    backends: 'postgres+redis',
    env: { KEYGATE_BENCH_AUDIT: 'off' },
    diagnostic: true,
  },
  {
    id: 'keygate-hono-autopipeline',
    label: 'diagnostic: keygate on hono, Postgres + Redis, ioredis auto-pipelining',
    framework: 'hono',
    kind: 'keygate',
    server: 'keygate-hono',
    baseline: 'bare-hono',
    keys: 'keygate-postgres',
    backends: 'postgres+redis',
    env: { KEYGATE_BENCH_AUTOPIPELINE: 'on' },
    diagnostic: true,
  },
  {
    id: 'better-auth',
    label: 'better-auth API-key plugin on hono, Postgres',
    framework: 'hono',
    kind: 'peer',
    server: 'better-auth',
    baseline: 'bare-hono',
    keys: 'better-auth',
    backends: 'postgres',
  },
  {
    id: 'hand-rolled-hono',
    label:
      'hand-rolled hono (lru-cache, Postgres lookup on a miss, rate-limiter-flexible on Redis)',
    framework: 'hono',
    kind: 'peer',
    server: 'hand-rolled-hono',
    baseline: 'bare-hono',
    keys: 'hand-rolled',
    backends: 'postgres+redis',
  },
  {
    id: 'hand-rolled',
    label: 'hand-rolled express (express-rate-limit + Redis, Postgres lookup)',
    framework: 'express',
    kind: 'peer',
    server: 'hand-rolled-express',
    baseline: 'bare-express',
    keys: 'hand-rolled',
    backends: 'postgres+redis',
  },
];
