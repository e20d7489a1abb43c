import { type AuthFailureGuard, type AuthFailureLimit, KeygateConfigError } from '@keygate/core';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { type RedisClient, RedisTimeoutError, withTimeout } from './client.js';

export interface RedisAuthFailureGuardOptions extends AuthFailureLimit {
  /** ioredis client, ideally from `connectRedis()`. Required. */
  client: RedisClient;
  /** First segment of every key: `<namespace>:auth-fail:<ip>`. Default `'keygate'`. */
  namespace?: string;
  /** Longest a failed authentication waits for Redis before counting in memory, in ms. Default 100. */
  timeoutMs?: number;
}

/**
 * Failed authentications per client IP, counted across instances in Redis. While Redis is
 * unreachable each instance counts on its own (rate-limiter-flexible's insurance limiter).
 */
export class RedisAuthFailureGuard implements AuthFailureGuard {
  readonly #redis: RateLimiterRedis;
  readonly #memory: RateLimiterMemory;
  readonly #timeoutMs: number;

  constructor(options: RedisAuthFailureGuardOptions) {
    const {
      client,
      namespace = 'keygate',
      timeoutMs = 500,
      points = 20,
      durationSeconds = 60,
      blockSeconds = 300,
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
    this.#memory = new RateLimiterMemory(limit);
    this.#redis = new RateLimiterRedis({
      ...limit,
      storeClient: client,
      // Go straight to the insurance limiter while disconnected instead of waiting on the socket.
      rejectIfRedisNotReady: true,
      insuranceLimiter: this.#memory,
    });
    this.#timeoutMs = timeoutMs;
  }

  async recordFailure(ip: string): Promise<number> {
    try {
      await withTimeout(this.#redis.consume(ip), this.#timeoutMs);
      return 0;
    } catch (outcome) {
      if (outcome instanceof RedisTimeoutError) return this.#recordInMemory(ip);
      return blockedSeconds(outcome);
    }
  }

  async #recordInMemory(ip: string): Promise<number> {
    try {
      await this.#memory.consume(ip);
      return 0;
    } catch (outcome) {
      return blockedSeconds(outcome);
    }
  }
}

function blockedSeconds(outcome: unknown): number {
  if (!(outcome instanceof RateLimiterRes)) throw outcome;
  return Math.max(1, Math.ceil(outcome.msBeforeNext / 1000));
}
