import { KeygateConfigError, TimeoutError } from '@keygate/core';
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/** A single Redis connection or a Redis Cluster, both from ioredis 5. */
export type RedisClient = Redis | Cluster;

/** Where outages are reported: once when Redis becomes unreachable (`warn`), once when it is back (`info`). */
export type RedisLogger = Pick<Console, 'warn' | 'info'>;

/** Delay before reconnect attempt `attempt` (1, 2, ...): exponential from 100 ms, capped at 2 s, with jitter. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(2_000, 50 * 2 ** attempt);
  // Jitter keeps a fleet of instances from reconnecting in lockstep after an outage.
  return Math.round(base * (0.75 + Math.random() / 4));
}

/** Per-connection settings shared by a single client and a Cluster's node connections. */
const CONNECTION_DEFAULTS = {
  maxRetriesPerRequest: 0,
  // A command resent after reconnecting would charge Redis for a request already answered from memory.
  autoResendUnfulfilledCommands: false,
  // A backstop: keygate's own calls are bounded by their `timeoutMs`, which is shorter.
  commandTimeout: 2_000,
  connectTimeout: 2_000,
} as const satisfies RedisOptions;

/**
 * Client settings for a request path that must never wait on Redis: commands fail at
 * once while disconnected instead of queueing, and in-flight commands fail fast.
 */
export const REDIS_CLIENT_DEFAULTS = {
  ...CONNECTION_DEFAULTS,
  enableOfflineQueue: false,
  retryStrategy: reconnectDelay,
} as const satisfies RedisOptions;

/**
 * An ioredis client configured with {@link REDIS_CLIENT_DEFAULTS} (each can be overridden
 * in `options`). It connects at once and reconnects forever with backoff.
 */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, { ...REDIS_CLIENT_DEFAULTS, ...options });
  // keygate's components log each outage once; without a listener ioredis prints every failed reconnect.
  client.on('error', () => {});
  return client;
}

/**
 * An ioredis Cluster with the same fail-fast settings: no cluster-level offline queue,
 * a 2 s command timeout and backoff between reconnects. `nodes` are some of the cluster's
 * nodes (it discovers the rest), as `{ host, port }` objects or as the text of
 * `REDIS_CLUSTER_NODES` (see {@link parseRedisClusterNodes}). `options` override the defaults.
 */
export function connectRedisCluster(
  nodes: ClusterNode[] | string,
  options: ClusterOptions = {},
): Cluster {
  const seeds =
    typeof nodes === 'string' ? parseRedisClusterNodes(nodes) : { nodes, redisOptions: {} };
  const cluster = new Cluster(seeds.nodes, {
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay,
    ...options,
    // Node connections keep their offline queue: the Cluster's own ready check runs before they connect.
    redisOptions: { ...CONNECTION_DEFAULTS, ...seeds.redisOptions, ...options.redisOptions },
  });
  cluster.on('error', () => {});
  return cluster;
}

/**
 * Reads `host:port,host:port,...` (the form of `REDIS_CLUSTER_NODES`). An entry may also be a
 * `redis://` or `rediss://` URL: its user name and password, and TLS for `rediss://`, apply to
 * every node of the cluster.
 */
export function parseRedisClusterNodes(text: string): {
  nodes: Array<{ host: string; port: number }>;
  redisOptions: RedisOptions;
} {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'Redis Cluster nodes must be given as host:port[,host:port...]',
    );
  }
  const redisOptions: RedisOptions = {};
  const nodes = entries.map((entry) => {
    const text = entry.includes('://') ? entry : `redis://${entry}`;
    const url = URL.canParse(text) ? new URL(text) : null;
    if (!url || !['redis:', 'rediss:'].includes(url.protocol) || !url.hostname) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `not a Redis Cluster node: ${JSON.stringify(entry.replace(/\/\/[^@/]*@/, '//***@'))} (expected host:port or a redis:// URL)`,
      );
    }
    if (url.username) redisOptions.username = decodeURIComponent(url.username);
    if (url.password) redisOptions.password = decodeURIComponent(url.password);
    if (url.protocol === 'rediss:') redisOptions.tls = {};
    // IPv6 hosts come back from URL in brackets; ioredis wants them bare.
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 6379) };
  });
  return { nodes, redisOptions };
}

/** Whether `client` is an ioredis Cluster (a duck-typed check, so another copy of ioredis also passes). */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as Partial<Cluster>).isCluster === true;
}

/**
 * Resolves `true` once `client` is ready, `false` when its first connection attempt fails or
 * `timeoutMs` passes first. It never rejects.
 */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = (ready: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('close', onClose);
      resolve(ready);
    };
    const onReady = () => settle(true);
    const onClose = () => settle(false);
    const timer = setTimeout(onClose, timeoutMs);
    client.once('ready', onReady);
    client.once('close', onClose);
  });
}

/** What a Redis call that outlasts its deadline rejects with (the core's `withTimeout` takes it). */
export function redisTimeout(ms: number): () => TimeoutError {
  return () => new TimeoutError(ms, 'Redis');
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
