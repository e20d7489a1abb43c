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
 * a 2 s command timeout and backoff between reconnects. `options` override them.
 */
export function connectRedisCluster(nodes: ClusterNode[], options: ClusterOptions = {}): Cluster {
  const cluster = new Cluster(nodes, {
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay,
    ...options,
    // Node connections keep their offline queue: the Cluster's own ready check runs before they connect.
    redisOptions: { ...CONNECTION_DEFAULTS, ...options.redisOptions },
  });
  cluster.on('error', () => {});
  return cluster;
}

/** Raised when a Redis call takes longer than the caller may wait. */
export class RedisTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = 'RedisTimeoutError';
  }
}

/** `promise`, or a `RedisTimeoutError` after `ms`, whichever comes first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // After a busy stretch timers run before the socket is read: give a reply that is already
    // there one turn to arrive, so a busy event loop here is not taken for a stalled Redis.
    timer = setTimeout(() => setImmediate(() => reject(new RedisTimeoutError(ms))), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function isReady(client: RedisClient): boolean {
  return client.status === 'ready';
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
