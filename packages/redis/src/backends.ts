import { type AuthFailureLimit, KeygateConfigError, withTimeout } from '@keygate/core';
import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';
import {
  connectRedis,
  connectRedisCluster,
  describeError,
  isCluster,
  parseRedisClusterNodes,
  REDIS_CLIENT_DEFAULTS,
  type RedisClient,
  type RedisLogger,
  redisTimeout,
  whenReady,
} from './client.js';
import { RedisAuthFailureGuard } from './failure-guard.js';
import { RedisInvalidationBus } from './invalidation.js';
import { LeasedRedisRateLimiter } from './leased-rate-limiter.js';
import { RedisNodeHealth, requirePositive } from './node-health.js';
import { type RedisErrorPolicy, RedisRateLimiter } from './rate-limiter.js';

/**
 * `'exact'`: one Redis call per request. `'leased'`: instances take tokens from Redis in leases
 * and spend them in memory, so most requests make no Redis call; never more admitted either way.
 */
export type RedisLimitsMode = 'exact' | 'leased';

export type RedisBackendsOptions = (
  | {
      /** `redis://` or `rediss://` URL of a single Redis; the client is created with `connectRedis()` and closed by `close()`. */
      url: string;
      /** Overrides for the created client (see `REDIS_CLIENT_DEFAULTS`). */
      redisOptions?: RedisOptions;
    }
  | {
      /**
       * Some nodes of a Redis Cluster, as `host:port,host:port` (the form of `REDIS_CLUSTER_NODES`)
       * or `{ host, port }` objects; the client is created with `connectRedisCluster()` and closed by `close()`.
       */
      clusterNodes: string | ClusterNode[];
      /** Overrides for the created Cluster client. */
      clusterOptions?: ClusterOptions;
    }
  | {
      /** An existing ioredis client or Cluster; `close()` leaves it open. */
      client: RedisClient;
    }
) & {
  /** How limits are shared (`'exact'` or `'leased'`, see `RedisLimitsMode`). Default `'exact'`. */
  limits?: RedisLimitsMode;
  /** What the rate limiter does while the node serving a key is unreachable. Default `'memory'`. */
  onRedisError?: RedisErrorPolicy;
  /** Failed authentications allowed per IP. Default 20 per 60 s, then blocked 300 s. */
  authFailureLimit?: AuthFailureLimit;
  /** First segment of every key and of the pub/sub channel. Default `'keygate'`. */
  namespace?: string;
  /** Longest any request waits for Redis, in ms. Default 500. */
  timeoutMs?: number;
  /** While a node is down, how often it is probed before requests try it again, in ms. Default 1,000. */
  recheckIntervalMs?: number;
  /** Where outages are logged, once per node and transition. Default `console`. */
  logger?: RedisLogger;
};

export interface RedisBackends {
  client: RedisClient;
  limiter: RedisRateLimiter | LeasedRedisRateLimiter;
  failureGuard: RedisAuthFailureGuard;
  invalidation: RedisInvalidationBus;
  /** Outages per node, shared by the three components. */
  nodeHealth: RedisNodeHealth;
  /**
   * Waits up to `timeoutMs` (default 2,000) for the client: `true` once it is ready, `false`
   * if it could not connect in time (keygate then runs on its fallbacks). Rejects with a
   * `KeygateConfigError` when the client is of the wrong kind: a single-node URL that points
   * at a Redis Cluster node, or cluster nodes that are a Redis without cluster mode.
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Closes the subscriber connection, and the client when it was created here. Idempotent. */
  close(): Promise<void>;
}

/**
 * The three Redis-backed pieces keygate needs, on one client and one per-node outage tracker:
 * `createKeygate({ limiter, authFailureGuard: failureGuard, invalidation })`.
 */
export function createRedisBackends(options: RedisBackendsOptions): RedisBackends {
  const {
    limits = 'exact',
    onRedisError = 'memory',
    authFailureLimit,
    namespace,
    timeoutMs,
    recheckIntervalMs,
    logger,
  } = options;
  if (timeoutMs !== undefined) requirePositive('timeoutMs', timeoutMs);
  // ioredis's command timeout is a backstop behind keygate's own, so never the shorter of the two.
  const backstop =
    timeoutMs === undefined
      ? {}
      : { commandTimeout: Math.max(REDIS_CLIENT_DEFAULTS.commandTimeout, timeoutMs) };
  let client: RedisClient;
  let owned = true;
  if ('client' in options && options.client) {
    client = options.client;
    owned = false;
  } else if ('url' in options && options.url) {
    client = connectRedis(options.url, { ...backstop, ...options.redisOptions });
  } else if ('clusterNodes' in options && options.clusterNodes) {
    client = connectRedisCluster(options.clusterNodes, {
      ...options.clusterOptions,
      redisOptions: { ...backstop, ...options.clusterOptions?.redisOptions },
    });
  } else {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'createRedisBackends needs a url, clusterNodes or a client',
    );
  }
  if (limits !== 'exact' && limits !== 'leased') {
    if (owned) client.disconnect();
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `limits must be 'exact' or 'leased' (got ${String(limits)})`,
    );
  }
  const nodeHealth = new RedisNodeHealth({
    client,
    timeoutMs,
    recheckIntervalMs,
    logger,
    whileDown:
      onRedisError === 'fail-closed'
        ? 'refusing rate-limited requests for keys on it and counting failed authentications in memory'
        : 'applying per-instance in-memory limits and failed-authentication counts to keys on it',
    whenBack: 'limits for keys on it are shared again',
  });
  const shared = { client, namespace, timeoutMs, logger, nodeHealth };
  const limiter =
    limits === 'leased'
      ? new LeasedRedisRateLimiter({ ...shared, onRedisError, recheckIntervalMs })
      : new RedisRateLimiter({ ...shared, onRedisError, recheckIntervalMs });
  const failureGuard = new RedisAuthFailureGuard({ ...shared, ...authFailureLimit });
  const invalidation = new RedisInvalidationBus(shared);
  let closing: Promise<void> | null = null;
  return {
    client,
    limiter,
    failureGuard,
    invalidation,
    nodeHealth,
    ready: (waitMs = 2_000) => checkedReady(client, waitMs),
    close() {
      closing ??= (async () => {
        await Promise.all([limiter.close(), failureGuard.close(), invalidation.close()]);
        nodeHealth.close();
        if (owned) await quit(client);
      })();
      return closing;
    },
  };
}

/** What `redisConnectionFromEnv` reads: where Redis is and, when set, how long keygate waits for it. */
export type RedisConnectionFromEnv = ({ url: string } | { clusterNodes: string }) & {
  timeoutMs?: number;
};

/** The longest `KEYGATE_REDIS_TIMEOUT_MS` taken: a request waiting longer on Redis is a mistake. */
const MAX_ENV_TIMEOUT_MS = 60_000;

/**
 * Where the reference app and the CLI find Redis: `REDIS_CLUSTER_NODES` (`host:port,host:port`,
 * some nodes of a Redis Cluster) or `REDIS_URL` (a single Redis), with `KEYGATE_REDIS_TIMEOUT_MS`
 * as `timeoutMs` when set, as `createRedisBackends` options; `null` when neither is set.
 */
export function redisConnectionFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): RedisConnectionFromEnv | null {
  const url = env.REDIS_URL?.trim();
  const clusterNodes = env.REDIS_CLUSTER_NODES?.trim();
  if (url && clusterNodes) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'set REDIS_URL (a single Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both',
    );
  }
  const timeout = env.KEYGATE_REDIS_TIMEOUT_MS?.trim();
  const wait: { timeoutMs?: number } = {};
  if (timeout) {
    wait.timeoutMs = Number(timeout);
    if (!/^\d+$/.test(timeout) || wait.timeoutMs < 1 || wait.timeoutMs > MAX_ENV_TIMEOUT_MS) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `KEYGATE_REDIS_TIMEOUT_MS must be a whole number of milliseconds from 1 to ${MAX_ENV_TIMEOUT_MS} (got ${timeout})`,
      );
    }
  }
  if (clusterNodes) {
    // Fails now, with the entry at fault, rather than as a connection that never succeeds.
    parseRedisClusterNodes(clusterNodes);
    return { clusterNodes, ...wait };
  }
  return url ? { url, ...wait } : null;
}

async function checkedReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (isCluster(client)) {
    let notCluster = false;
    const onNodeError = (error: unknown) => {
      if (/cluster support disabled/i.test(describeError(error))) notCluster = true;
    };
    client.on('node error', onNodeError);
    const ready = await whenReady(client, timeoutMs);
    client.off('node error', onNodeError);
    if (notCluster) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        'the Redis Cluster nodes given are a Redis without cluster mode: connect to it with a single-node URL (REDIS_URL), not as a cluster',
      );
    }
    return ready;
  }
  if (!(await whenReady(client, timeoutMs))) return false;
  const info = await withTimeout(client.info('cluster'), timeoutMs, redisTimeout(timeoutMs)).catch(
    () => '',
  );
  if (/cluster_enabled:1/.test(info)) {
    const { host, port } = client.options;
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `Redis at ${host}:${port} is a node of a Redis Cluster: connect with connectRedisCluster() or the clusterNodes option (REDIS_CLUSTER_NODES for the reference app and the CLI), not a single-node URL (REDIS_URL)`,
    );
  }
  return true;
}

/** Closes the connection: politely (QUIT, then its end) when connected, at once otherwise. */
async function quit(client: RedisClient): Promise<void> {
  if (client.status !== 'ready') {
    // Between reconnect attempts there is no socket, hence no 'end' to wait for: just stop retrying.
    client.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  try {
    await client.quit();
    await withTimeout(ended, 1_000, redisTimeout(1_000));
  } catch {
    // The connection dropped while quitting, or did not close in time.
    client.disconnect();
  }
}
