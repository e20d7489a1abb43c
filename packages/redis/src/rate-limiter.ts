import {
  KeygateConfigError,
  MemoryRateLimiter,
  type RateLimiter,
  type RateLimitPolicy,
  type RateLimitResult,
  settlePolicies,
} from '@keygate/core';
import { describeError, type RedisClient, type RedisLogger } from './client.js';
import { RedisNodeHealth, requirePositive } from './node-health.js';
import { type PolicyStateField, policyField, RATE_LIMIT_SCRIPT } from './rate-limit-script.js';

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
  /** First segment of every key: a subject's limits are the hash `<namespace>:rl:{<subject>}`. Default `'keygate'`. */
  namespace?: string;
  /** Longest a request waits for Redis before the fallback answers, in ms. Default 500. */
  timeoutMs?: number;
  /** While a node is down, how often it is probed before requests try it again, in ms. Default 1,000. */
  recheckIntervalMs?: number;
  /** Receives one `warn` when a node becomes unusable and one `info` when it is back. Default `console`. */
  logger?: RedisLogger;
  /**
   * Outage tracking per node, shared with the other components on the same client (as
   * `createRedisBackends` does). Default: the limiter's own, from `timeoutMs`,
   * `recheckIntervalMs` and `logger`.
   */
  nodeHealth?: RedisNodeHealth;
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
 * kept in one hash, checked and charged by one Lua script call (one round trip, four Redis
 * commands, two for a rejected request), on Redis's clock; a rejected request charges nothing. The arithmetic is that of
 * `MemoryRateLimiter`, so headers read the same with or without Redis. While the node
 * serving a subject is down, that subject falls back (`onRedisError`) without waiting;
 * subjects on the other nodes keep their shared limits.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: RedisClient;
  readonly #backend: LimiterBackend;
  readonly #prefix: string;
  /** Each set of policies' script arguments, made once: a key's policies are the same array on every request. */
  readonly #policyArgs = new WeakMap<readonly RateLimitPolicy[], string[]>();

  constructor(options: RedisRateLimiterOptions) {
    this.#backend = limiterBackend(options, 'RedisRateLimiter');
    this.#client = options.client;
    this.#prefix = `${options.namespace ?? 'keygate'}:rl:`;
    this.#client.defineCommand(COMMAND, { lua: RATE_LIMIT_SCRIPT });
  }

  /** The Redis hash holding every policy's state for `subject`; its hash tag is the subject (one slot). */
  keyOf(subject: string): string {
    return `${this.#prefix}{${subject}}`;
  }

  /** The field of `keyOf(subject)` holding `field` of `policyName`'s state, e.g. `daily:count`. */
  fieldOf(policyName: string, field: PolicyStateField): string {
    return policyField(policyName, field);
  }

  consume(subject: string, policies: readonly RateLimitPolicy[]): Promise<RateLimitResult> {
    if (policies.length === 0) return Promise.resolve({ allowed: true, policies: [] });
    let args = this.#policyArgs.get(policies);
    if (args === undefined) {
      args = policyArgs(policies);
      this.#policyArgs.set(policies, args);
    }
    const scriptArgs = args;
    const key = this.keyOf(subject);
    const command = (this.#client as unknown as ScriptCommand)[COMMAND];
    // Chained rather than awaited: one promise fewer on every request.
    return this.#backend.nodeHealth
      .call(key, () => command.call(this.#client, 1, key, ...scriptArgs), this.#backend.timeoutMs)
      .then(
        (reply) => settle(policies, reply),
        (error: unknown) => this.#backend.fallback(subject, policies, error),
      );
  }

  async close(): Promise<void> {
    await this.#backend.close();
  }
}

/** What both Redis limiters share: the per-node outage tracking, and what answers while a node is down. */
export interface LimiterBackend {
  nodeHealth: RedisNodeHealth;
  timeoutMs: number;
  /** Answers for a subject whose node cannot be reached: the insurance, or `RateLimiterUnavailableError`. */
  fallback(
    subject: string,
    policies: readonly RateLimitPolicy[],
    error: unknown,
  ): Promise<RateLimitResult>;
  close(): Promise<void>;
}

/** Checks a limiter's options (throwing `KeygateConfigError` once, at construction) and sets up what it shares. */
export function limiterBackend(options: RedisRateLimiterOptions, name: string): LimiterBackend {
  const {
    client,
    onRedisError = 'memory',
    timeoutMs = 500,
    recheckIntervalMs = 1_000,
    logger = console,
  } = options;
  if (!client) throw new KeygateConfigError('INVALID_OPTION', `${name} needs a client`);
  if (onRedisError !== 'memory' && onRedisError !== 'fail-closed') {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `onRedisError must be 'memory' or 'fail-closed' (got ${String(onRedisError)})`,
    );
  }
  requirePositive('timeoutMs', timeoutMs);
  requirePositive('recheckIntervalMs', recheckIntervalMs);
  const insurance: RateLimiter = options.insurance ?? new MemoryRateLimiter();
  const nodeHealth =
    options.nodeHealth ??
    new RedisNodeHealth({
      client,
      timeoutMs,
      recheckIntervalMs,
      logger,
      whileDown:
        onRedisError === 'fail-closed'
          ? 'refusing rate-limited requests for keys on it'
          : 'applying per-instance in-memory limits to keys on it',
      whenBack: 'limits for keys on it are shared again',
    });
  const ownsNodeHealth = !options.nodeHealth;
  return {
    nodeHealth,
    timeoutMs,
    async fallback(subject, policies, error) {
      if (onRedisError === 'fail-closed') throw new RateLimiterUnavailableError(error);
      return insurance.consume(subject, policies);
    },
    async close() {
      if (ownsNodeHealth) nodeHealth.close();
      await insurance.close?.();
    },
  };
}

/** Four script arguments per policy: its kind, its quota, its refill rate or window length, its name. */
export function policyArgs(policies: readonly RateLimitPolicy[]): string[] {
  const args: string[] = [];
  for (const policy of policies) {
    if (policy.kind === 'token-bucket') {
      args.push(policy.kind, String(policy.capacity), String(policy.refillPerSecond), policy.name);
    } else {
      args.push(policy.kind, String(policy.limit), String(policy.windowSeconds), policy.name);
    }
  }
  return args;
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
