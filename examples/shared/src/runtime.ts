import { readFileSync } from 'node:fs';
import {
  type Containment,
  createKeygate,
  type GitHubSigningKey,
  type IssuedKey,
  JsonLinesAuditSink,
  type Keygate,
  type KeygateOptions,
  type LeakOptions,
} from '@keygate/core';
import { type KeyDatabase, openKeyDatabase, PostgresWebhooks } from '@keygate/postgres';
import { createRedisBackends, type RedisLimitsMode, redisConnectionFromEnv } from '@keygate/redis';
import proxyaddr from 'proxy-addr';

export interface Runtime {
  keygate: Keygate;
  /** One line saying where keys and limits live. */
  description: string;
  /** The admin key created on the first start with an empty embedded store. */
  bootstrap: IssuedKey | null;
  close(): Promise<void>;
}

export const APP_SCOPES = ['read:data', 'write:llm', 'track:events', 'read:config', 'manage:keys'];

/**
 * Builds keygate from the environment: Postgres when `DATABASE_URL` is set (embedded PGlite under
 * `.keygate/` otherwise), Redis when `REDIS_URL` (a single Redis) or `REDIS_CLUSTER_NODES`
 * (`host:port,...` of a Redis Cluster) is set (in-process limits otherwise; leased with
 * `KEYGATE_LIMITS=leased`; its timeout from `KEYGATE_REDIS_TIMEOUT_MS`), digests peppered with
 * `KEYGATE_PEPPER` when it is set, and the audit trail also as JSON lines on stdout when
 * `KEYGATE_AUDIT_STDOUT=1`.
 */
export async function openRuntime(
  env: NodeJS.ProcessEnv = process.env,
  options: KeygateOptions = {},
): Promise<Runtime> {
  const databaseUrl = env.DATABASE_URL || undefined;
  const redisConnection = redisConnectionFromEnv(env);
  const limits = limitsFrom(env);
  const redis = redisConnection ? createRedisBackends({ ...redisConnection, limits }) : null;
  let database: KeyDatabase;
  try {
    // A Redis of the wrong kind (a cluster node given as REDIS_URL) stops the start; one that is down does not.
    await redis?.ready();
    database = await openKeyDatabase({ databaseUrl });
  } catch (error) {
    await redis?.close();
    throw error;
  }
  const auditToStdout = isOn(env.KEYGATE_AUDIT_STDOUT);
  let keygate: Keygate;
  let webhooks: PostgresWebhooks | undefined;
  try {
    // Webhooks need a Postgres server: the embedded database serves one connection.
    webhooks = databaseUrl ? webhooksFrom(env, database) : undefined;
    keygate = createKeygate({
      leaks: leaksFrom(env),
      ...(webhooks ? { webhooks } : {}),
      pepper: env.KEYGATE_PEPPER || undefined,
      store: database.store,
      auditSinks: auditToStdout
        ? [database.auditSink, new JsonLinesAuditSink()]
        : [database.auditSink],
      ...(redis
        ? {
            limiter: redis.limiter,
            authFailureGuard: redis.failureGuard,
            invalidation: redis.invalidation,
          }
        : {}),
      ...options,
    });
  } catch (error) {
    // A bad setting (a short KEYGATE_PEPPER): leave nothing open behind the message.
    await redis?.close();
    await database.close();
    throw error;
  }

  await webhooks?.start();

  let bootstrap: IssuedKey | null = null;
  if (
    !databaseUrl &&
    (await database.store.list({ limit: 1, includeRevoked: true })).length === 0
  ) {
    bootstrap = await keygate.keys.create({ name: 'Bootstrap admin', scopes: APP_SCOPES });
  }

  const description = [
    databaseUrl ? 'keys in Postgres' : 'keys in embedded PGlite (.keygate/)',
    redisConnection
      ? `${limits === 'leased' ? 'leased ' : ''}limits in ${'clusterNodes' in redisConnection ? 'Redis Cluster' : 'Redis'}`
      : 'limits in memory',
    ...(auditToStdout ? ['audit trail also on stdout'] : []),
    ...(webhooks ? ['webhooks delivered'] : []),
  ].join(', ');

  return {
    keygate,
    description,
    bootstrap,
    async close() {
      await keygate.close();
      await redis?.close();
      await database.close();
    },
  };
}

/** What to print once when a bootstrap key was created: the secret and how to use it. */
export function bootstrapMessage(issued: IssuedKey, baseUrl: string): string {
  return [
    '',
    'Created a bootstrap admin key (shown once; store it now):',
    `  ${issued.secret}`,
    '',
    `Manage keys in the browser: open ${baseUrl}/login and sign in with it.`,
    '',
    'Try it:',
    `  curl -H "x-api-key: ${issued.secret}" ${baseUrl}/v1/query/websites`,
    `  curl -H "Authorization: Bearer ${issued.secret}" ${baseUrl}/v1/websites/w_1/analytics`,
    `  curl -H "x-api-key: ${issued.secret}" -H "content-type: application/json" \\`,
    `       -d '{"name":"reporting","scopes":["read:data"],"resources":["website:w_1"]}' ${baseUrl}/v1/api-keys`,
    '',
  ].join('\n');
}

/** The longest `KEYGATE_SHUTDOWN_MS` taken. */
const MAX_SHUTDOWN_MS = 600_000;

/**
 * `KEYGATE_SHUTDOWN_MS`: how long a shutdown (SIGTERM, SIGINT) may take before connections are cut
 * and the process exits, in ms, 1 to 600000. Default 10000, inside Kubernetes' default 30 s grace.
 */
export function shutdownDeadlineFrom(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.KEYGATE_SHUTDOWN_MS?.trim();
  if (!value) return 10_000;
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms < 1 || ms > MAX_SHUTDOWN_MS) {
    throw new Error(
      `KEYGATE_SHUTDOWN_MS must be a whole number of milliseconds from 1 to ${MAX_SHUTDOWN_MS} (got ${value})`,
    );
  }
  return ms;
}

export function portFrom(env: NodeJS.ProcessEnv = process.env): number {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`PORT must be an integer from 0 to 65535 (got ${env.PORT})`);
  }
  return port;
}

/**
 * Which proxies' `X-Forwarded-For` entries name the client: a number of hops (`0`: none, the
 * connection's address is the client), or the proxies' addresses and CIDR ranges.
 */
export type TrustProxy = number | string[];

/** `TRUST_PROXY`: unset or `0` (off), a number of proxy hops, or a comma-separated list of proxy addresses/CIDR ranges. */
export function trustProxyFrom(env: NodeJS.ProcessEnv = process.env): TrustProxy {
  const value = (env.TRUST_PROXY ?? '').trim();
  if (value === '' || ['false', 'off', 'no'].includes(value.toLowerCase())) return 0;
  if (/^\d{1,3}$/.test(value)) return Number(value);
  const proxies = value.split(',').map((entry) => entry.trim());
  try {
    proxyaddr.compile(proxies);
  } catch {
    throw new Error(
      `TRUST_PROXY must be a number of proxy hops or a comma-separated list of proxy addresses or CIDR ranges (got ${value})`,
    );
  }
  return proxies;
}

/** `KEYGATE_LIMITS`: `exact` (unset: the default) or `leased`; it applies when Redis is configured. */
export function limitsFrom(env: NodeJS.ProcessEnv = process.env): RedisLimitsMode {
  const value = (env.KEYGATE_LIMITS ?? '').trim().toLowerCase();
  if (value === '' || value === 'exact') return 'exact';
  if (value === 'leased') return 'leased';
  throw new Error(`KEYGATE_LIMITS must be exact or leased (got ${env.KEYGATE_LIMITS})`);
}

function isOn(value: string | undefined): boolean {
  return ['1', 'true', 'yes'].includes((value ?? '').toLowerCase());
}

const CONTAINMENTS: readonly Containment[] = ['revoke', 'quarantine', 'notify'];

/**
 * What a leak report does, from `KEYGATE_LEAK_CONTAINMENT` (`live:revoke,test:quarantine`; each
 * environment `revoke`, `quarantine` or `notify`; default `revoke`) and `KEYGATE_GITHUB_KEYS_FILE`
 * (GitHub's secret-scanning keys as its API answers them, `{"public_keys": [...]}`, saved to a
 * file: signed reports are refused without it).
 */
export function leaksFrom(env: NodeJS.ProcessEnv = process.env): LeakOptions {
  const containment: NonNullable<LeakOptions['containment']> = {};
  for (const entry of (env.KEYGATE_LEAK_CONTAINMENT ?? '').split(',')) {
    if (entry.trim() === '') continue;
    const [environment = '', value = ''] = entry.split(':').map((part) => part.trim());
    if (
      (environment !== 'live' && environment !== 'test') ||
      !CONTAINMENTS.includes(value as Containment)
    ) {
      throw new Error(
        `KEYGATE_LEAK_CONTAINMENT must be like live:revoke,test:quarantine (each revoke, quarantine or notify; got ${env.KEYGATE_LEAK_CONTAINMENT})`,
      );
    }
    containment[environment] = value as Containment;
  }
  const file = env.KEYGATE_GITHUB_KEYS_FILE?.trim();
  let githubKeys: GitHubSigningKey[] | undefined;
  if (file) {
    try {
      const listed = JSON.parse(readFileSync(file, 'utf8')) as {
        public_keys?: Array<{ key_identifier: string; key: string }>;
      };
      githubKeys = (listed.public_keys ?? []).map((k) => ({ id: k.key_identifier, key: k.key }));
    } catch (error) {
      throw new Error(`KEYGATE_GITHUB_KEYS_FILE: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  return { containment, ...(githubKeys ? { githubKeys } : {}) };
}

/** Webhooks on the Postgres server: owners' endpoints, and the operator's from `KEYGATE_WEBHOOK_URL` and `KEYGATE_WEBHOOK_SECRET`. */
function webhooksFrom(env: NodeJS.ProcessEnv, database: KeyDatabase): PostgresWebhooks {
  const url = env.KEYGATE_WEBHOOK_URL?.trim();
  const secret = env.KEYGATE_WEBHOOK_SECRET?.trim();
  if (Boolean(url) !== Boolean(secret)) {
    throw new Error('KEYGATE_WEBHOOK_URL and KEYGATE_WEBHOOK_SECRET go together');
  }
  return new PostgresWebhooks(database.db, url && secret ? { endpoints: [{ url, secret }] } : {});
}
