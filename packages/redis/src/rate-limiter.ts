import {
  KeygateConfigError,
  MemoryRateLimiter,
  type RateLimiter,
  type RateLimitPolicy,
  type RateLimitResult,
  settlePolicies,
} from '@keygate/core';
import {
  describeError,
  isReady,
  type RedisClient,
  type RedisLogger,
  withTimeout,
} from './client.js';
import { RATE_LIMIT_SCRIPT } from './rate-limit-script.js';

/** What the limiter does when Redis cannot answer. */
export type RedisErrorPolicy = 'memory' | 'fail-closed';

export interface RedisRateLimiterOptions {
  /** ioredis client, ideally from `connectRedis()` (no offline queue, short command timeout). Required. */
  client: RedisClient;
  /**
   * `'memory'`: answer from a per-instance in-memory limiter while Redis is unreachable.
   * `'fail-closed'`: throw `RateLimiterUnavailableError` (keygate answers 503). Default `'memory'`.
   */
  onRedisError?: RedisErrorPolicy;
  /** Limiter that answers while Redis is unreachable in `'memory'` mode. Default: a new `MemoryRateLimiter`. */
  insurance?: RateLimiter;
  /** First segment of every key: `<namespace>:rl:{<subject>}:<policy>`. Default `'keygate'`. */
  namespace?: string;
  /** Longest a request waits for Redis before the fallback answers, in ms. Default 100. */
  timeoutMs?: number;
  /** After a failed or timed-out call, how long requests skip Redis before trying it again, in ms. Default 1000. */
  recheckIntervalMs?: number;
  /** Receives one `warn` when Redis becomes unusable and one `info` when it is back. Default `console`. */
  logger?: RedisLogger;
}

/** Thrown by `consume()` in `'fail-closed'` mode while Redis is unreachable. */
export class RateLimiterUnavailableError extends Error {
  readonly code = 'RATE_LIMITER_UNAVAILABLE';
  constructor(cause: unknown) {
    super(`Redis rate limiter unavailable: ${describeError(cause)}`, { cause });
    this.name = 'RateLimiterUnavailableError';
  }
}

const COMMAND = 'keygateRateLimit';

type ScriptReply = [number, string, ...string[]];
type ScriptCommand = Record<
  typeof COMMAND,
  (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<ScriptReply>
>;

/**
 * Limits shared by every instance using the same Redis. All of a subject's policies are
 * checked and charged by one Lua script call (one round trip, one Cluster slot), on
 * Redis's clock; a rejected request charges nothing. The arithmetic is that of
 * `MemoryRateLimiter`, so headers read the same with or without Redis.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: RedisClient;
  readonly #onRedisError: RedisErrorPolicy;
  readonly #insurance: RateLimiter;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #recheckIntervalMs: number;
  readonly #logger: RedisLogger;
  #down = false;
  #skipRedisUntil = 0;

  constructor(options: RedisRateLimiterOptions) {
    const {
      client,
      onRedisError = 'memory',
      insurance = new MemoryRateLimiter(),
      namespace = 'keygate',
      timeoutMs = 500,
      recheckIntervalMs = 1_000,
      logger = console,
    } = options;
    if (!client) throw new KeygateConfigError('INVALID_OPTION', 'RedisRateLimiter needs a client');
    if (onRedisError !== 'memory' && onRedisError !== 'fail-closed') {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `onRedisError must be 'memory' or 'fail-closed' (got ${String(onRedisError)})`,
      );
    }
    requirePositive('timeoutMs', timeoutMs);
    requirePositive('recheckIntervalMs', recheckIntervalMs);
    this.#client = client;
    this.#onRedisError = onRedisError;
    this.#insurance = insurance;
    this.#prefix = `${namespace}:rl:`;
    this.#timeoutMs = timeoutMs;
    this.#recheckIntervalMs = recheckIntervalMs;
    this.#logger = logger;
    client.defineCommand(COMMAND, { lua: RATE_LIMIT_SCRIPT });
  }

  /** The Redis key holding `policyName`'s state for `subject`; the hash tag keeps a subject's keys in one slot. */
  keyOf(subject: string, policyName: string): string {
    return `${this.#prefix}{${subject}}:${policyName}`;
  }

  async consume(subject: string, policies: readonly RateLimitPolicy[]): Promise<RateLimitResult> {
    if (policies.length === 0) return { allowed: true, policies: [] };
    if (!isReady(this.#client)) {
      return this.#unavailable(subject, policies, `connection is ${this.#client.status}`);
    }
    if (this.#skipRedisUntil > Date.now()) {
      return this.#unavailable(subject, policies, 'a recent call failed');
    }
    const args: string[] = policies.map((p) => this.keyOf(subject, p.name));
    for (const policy of policies) {
      if (policy.kind === 'token-bucket') {
        args.push(policy.kind, String(policy.capacity), String(policy.refillPerSecond));
      } else {
        args.push(policy.kind, String(policy.limit), String(policy.windowSeconds));
      }
    }
    let reply: ScriptReply;
    try {
      const command = (this.#client as unknown as ScriptCommand)[COMMAND];
      reply = await withTimeout(
        command.call(this.#client, policies.length, ...args),
        this.#timeoutMs,
      );
    } catch (error) {
      this.#skipRedisUntil = Date.now() + this.#recheckIntervalMs;
      return this.#unavailable(subject, policies, error);
    }
    if (this.#down) {
      this.#down = false;
      this.#logger.info('[keygate] Redis rate limiter recovered; limits are shared again');
    }
    return settle(policies, reply);
  }

  async close(): Promise<void> {
    await this.#insurance.close?.();
  }

  #unavailable(
    subject: string,
    policies: readonly RateLimitPolicy[],
    cause: unknown,
  ): Promise<RateLimitResult> {
    const failClosed = this.#onRedisError === 'fail-closed';
    if (!this.#down) {
      this.#down = true;
      this.#logger.warn(
        `[keygate] Redis rate limiter unavailable (${describeError(cause)}); ${
          failClosed ? 'refusing rate-limited requests' : 'applying per-instance in-memory limits'
        } until it is back`,
      );
    }
    if (failClosed) return Promise.reject(new RateLimiterUnavailableError(cause));
    return this.#insurance.consume(subject, policies);
  }
}

function requirePositive(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `${name} must be a positive number (got ${String(value)})`,
    );
  }
}

/** Turns the script's reply (what each policy had before the request) into the shared result. */
function settle(policies: readonly RateLimitPolicy[], reply: ScriptReply): RateLimitResult {
  const snapshots = policies.map((policy, i) => ({
    policy,
    available: Number(reply[2 + 2 * i]),
    window: policy.kind === 'fixed-window' ? Number(reply[3 + 2 * i]) : undefined,
  }));
  return settlePolicies(snapshots, Number(reply[0]) === 1, Number(reply[1]) / 1000);
}
