import { type AuthFailureLimit, KeygateConfigError } from '@keygate/core';
import type { RedisOptions } from 'ioredis';
import { connectRedis, type RedisClient, type RedisLogger, withTimeout } from './client.js';
import { RedisAuthFailureGuard } from './failure-guard.js';
import { RedisInvalidationBus } from './invalidation.js';
import { type RedisErrorPolicy, RedisRateLimiter } from './rate-limiter.js';

export type RedisBackendsOptions = (
  | {
      /** `redis://` or `rediss://` URL; the client is created with `connectRedis()` and closed by `close()`. */
      url: string;
      /** Overrides for the created client (see `REDIS_CLIENT_DEFAULTS`). */
      redisOptions?: RedisOptions;
    }
  | {
      /** An existing ioredis client or Cluster; `close()` leaves it open. */
      client: RedisClient;
    }
) & {
  /** What the rate limiter does while Redis is unreachable. Default `'memory'`. */
  onRedisError?: RedisErrorPolicy;
  /** Failed authentications allowed per IP. Default 20 per 60 s, then blocked 300 s. */
  authFailureLimit?: AuthFailureLimit;
  /** First segment of every key and of the pub/sub channel. Default `'keygate'`. */
  namespace?: string;
  /** Longest any request waits for Redis, in ms. Default 100. */
  timeoutMs?: number;
  /** Where outages are logged, once per transition. Default `console`. */
  logger?: RedisLogger;
};

export interface RedisBackends {
  client: RedisClient;
  limiter: RedisRateLimiter;
  failureGuard: RedisAuthFailureGuard;
  invalidation: RedisInvalidationBus;
  /** Closes the subscriber connection, and the client when it was created from `url`. Idempotent. */
  close(): Promise<void>;
}

/**
 * The three Redis-backed pieces keygate needs, on one client:
 * `createKeygate({ limiter, authFailureGuard: failureGuard, invalidation })`.
 */
export function createRedisBackends(options: RedisBackendsOptions): RedisBackends {
  const { onRedisError, authFailureLimit, namespace, timeoutMs, logger } = options;
  let client: RedisClient;
  let owned: boolean;
  if ('client' in options && options.client) {
    client = options.client;
    owned = false;
  } else if ('url' in options && options.url) {
    client = connectRedis(options.url, options.redisOptions);
    owned = true;
  } else {
    throw new KeygateConfigError('INVALID_OPTION', 'createRedisBackends needs a url or a client');
  }
  const limiter = new RedisRateLimiter({ client, onRedisError, namespace, timeoutMs, logger });
  const failureGuard = new RedisAuthFailureGuard({
    client,
    namespace,
    timeoutMs,
    ...authFailureLimit,
  });
  const invalidation = new RedisInvalidationBus({ client, namespace, timeoutMs, logger });
  let closing: Promise<void> | null = null;
  return {
    client,
    limiter,
    failureGuard,
    invalidation,
    close() {
      closing ??= (async () => {
        await Promise.all([limiter.close(), invalidation.close()]);
        if (owned) await quit(client);
      })();
      return closing;
    },
  };
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
    await withTimeout(ended, 1_000);
  } catch {
    // The connection dropped while quitting, or did not close in time.
    client.disconnect();
  }
}
