import { type AuthFailureGuard, type AuthFailureLimit, KeygateConfigError } from '@keygate/core';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClient, RedisLogger } from './client.js';
import { RedisNodeHealth } from './node-health.js';

export interface RedisAuthFailureGuardOptions extends AuthFailureLimit {
  /** ioredis client, ideally from `connectRedis()`. Required. */
  client: RedisClient;
  /** First segment of every key: `<namespace>:auth-fail:<ip>`. Default `'keygate'`. */
  namespace?: string;
  /** Longest a failed authentication waits for Redis before counting in memory, in ms. Default 500. */
  timeoutMs?: number;
  /** Receives one `warn` when a node becomes unusable and one `info` when it is back. Default `console`. */
  logger?: RedisLogger;
  /** Outage tracking per node, shared with the other components on the same client. Default: its own. */
  nodeHealth?: RedisNodeHealth;
}

/**
 * Failed authentications per client IP, counted across instances in Redis. While the node
 * holding an IP's counter is unreachable, each instance counts that IP on its own in memory,
 * without waiting on the node; IPs on the other nodes keep their shared counts.
 */
export class RedisAuthFailureGuard implements AuthFailureGuard {
  readonly #redis: RateLimiterRedis;
  readonly #memory: RateLimiterMemory;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #nodeHealth: RedisNodeHealth;
  readonly #ownsNodeHealth: boolean;

  constructor(options: RedisAuthFailureGuardOptions) {
    const {
      client,
      namespace = 'keygate',
      timeoutMs = 500,
      points = 20,
      durationSeconds = 60,
      blockSeconds = 300,
      logger = console,
      nodeHealth,
    } = options;
    if (!client) {
      throw new KeygateConfigError('INVALID_OPTION', 'RedisAuthFailureGuard needs a client');
    }
    for (const [name, value] of Object.entries({ timeoutMs, points, durationSeconds })) {
      if (!Number.isFinite(value) || value <= 0) {
        throw new KeygateConfigError('INVALID_OPTION', `${name} must be a positive number`);
      }
    }
    if (!Number.isFinite(blockSeconds) || blockSeconds < 0) {
      throw new KeygateConfigError('INVALID_OPTION', 'blockSeconds must be 0 or more');
    }
    const limit = {
      keyPrefix: `${namespace}:auth-fail`,
      points,
      duration: durationSeconds,
      blockDuration: blockSeconds,
    };
    this.#prefix = `${limit.keyPrefix}:`;
    this.#memory = new RateLimiterMemory(limit);
    // No insurance limiter inside: a Redis error must reach this class to mark the node down.
    this.#redis = new RateLimiterRedis({
      ...limit,
      storeClient: client,
      rejectIfRedisNotReady: true,
    });
    this.#timeoutMs = timeoutMs;
    this.#ownsNodeHealth = !nodeHealth;
    this.#nodeHealth =
      nodeHealth ??
      new RedisNodeHealth({
        client,
        timeoutMs,
        logger,
        whileDown: 'counting failed authentications of IPs on it per instance in memory',
        whenBack: 'failed authentications of IPs on it are counted across instances again',
      });
  }

  /** The Redis key counting `ip`'s failures. */
  keyOf(ip: string): string {
    return `${this.#prefix}${ip}`;
  }

  async recordFailure(ip: string): Promise<number> {
    try {
      return await this.#nodeHealth.call(
        this.keyOf(ip),
        () => this.#redis.consume(ip).then(() => 0, blockedSeconds),
        this.#timeoutMs,
      );
    } catch {
      return this.#memory.consume(ip).then(() => 0, blockedSeconds);
    }
  }

  async close(): Promise<void> {
    if (this.#ownsNodeHealth) this.#nodeHealth.close();
  }
}

/** rate-limiter-flexible rejects with a `RateLimiterRes` when the IP is out of attempts, with an `Error` when the store failed. */
function blockedSeconds(outcome: unknown): number {
  if (!(outcome instanceof RateLimiterRes)) throw outcome;
  return Math.max(1, Math.ceil(outcome.msBeforeNext / 1000));
}
