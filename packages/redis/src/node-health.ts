import { KeygateConfigError, withTimeout } from '@keygate/core';
import { Command, Redis } from 'ioredis';
import {
  describeError,
  isCluster,
  type RedisClient,
  type RedisLogger,
  redisTimeout,
} from './client.js';

export interface RedisNodeHealthOptions {
  /** The ioredis client or Cluster whose nodes are tracked. Required. */
  client: RedisClient;
  /** Longest a call (unless given its own) or a probe waits for its node, in ms. Default 500. */
  timeoutMs?: number;
  /** How often a node known to be down is probed in the background, in ms. Default 1,000. */
  recheckIntervalMs?: number;
  /** What happens to keys on a node while it is down, for the warning. */
  whileDown?: string;
  /** What happens once it is back, for the recovery line. */
  whenBack?: string;
  /** Receives one `warn` when a node goes down and one `info` when it is back. Default `console`. */
  logger?: RedisLogger;
}

/** Thrown by `RedisNodeHealth.call()` without calling Redis: the node serving the key is known to be down. */
export class RedisNodeUnavailableError extends Error {
  readonly node: string;
  constructor(node: string, cause: unknown) {
    super(`Redis node ${node} is down (${describeError(cause)})`, { cause });
    this.name = 'RedisNodeUnavailableError';
    this.node = node;
  }
}

/**
 * `down`: calls fail at once while a background probe checks the node every recheck interval.
 * `trial`: the probe got an answer; the next call goes through (`trying`), the others still fail
 * at once, and the node is declared back only when that call succeeds.
 */
interface Circuit {
  state: 'down' | 'trial' | 'trying';
  cause: unknown;
  timer?: NodeJS.Timeout;
}

/** Stands for every node while a Cluster client has no slot map (connecting, or all nodes lost). */
const WHOLE_CLUSTER = 'cluster';

/**
 * Outages per Redis node: a circuit breaker for each node that serves a key's slot (the one
 * server of a single Redis; each master of a Cluster). A call for a key on a node known to be
 * down fails at once, without touching Redis, so no request waits on a dead node while keys on
 * the other masters keep using Redis. Down nodes are probed in the background (and a Cluster's
 * slot map refreshed, so a failover is followed); one warning is logged when a node goes down
 * and one line when it is back. Shared by every component calling the same client.
 */
export class RedisNodeHealth {
  readonly #client: RedisClient;
  readonly #timeoutMs: number;
  readonly #recheckIntervalMs: number;
  readonly #whileDown: string;
  readonly #whenBack: string;
  readonly #logger: RedisLogger;
  readonly #circuits = new Map<string, Circuit>();
  /** A single Redis's address. */
  readonly #server: string;
  #closed = false;
  /** A (re)connected client has just answered its ready check: what was down for want of a connection may be tried again. */
  readonly #onReady = () => {
    const node = isCluster(this.#client) ? WHOLE_CLUSTER : this.#server;
    const circuit = this.#circuits.get(node);
    if (circuit?.state === 'down') {
      clearTimeout(circuit.timer);
      circuit.state = 'trial';
    }
  };

  constructor(options: RedisNodeHealthOptions) {
    const {
      client,
      timeoutMs = 500,
      recheckIntervalMs = 1_000,
      whileDown = 'calls for keys on it are answered without Redis',
      whenBack = 'keys on it use Redis again',
      logger = console,
    } = options;
    if (!client) throw new KeygateConfigError('INVALID_OPTION', 'RedisNodeHealth needs a client');
    requirePositive('timeoutMs', timeoutMs);
    requirePositive('recheckIntervalMs', recheckIntervalMs);
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.#recheckIntervalMs = recheckIntervalMs;
    this.#whileDown = whileDown;
    this.#whenBack = whenBack;
    this.#logger = logger;
    this.#server = isCluster(client)
      ? WHOLE_CLUSTER
      : (client.options.path ?? `${client.options.host}:${client.options.port}`);
    client.on('ready', this.#onReady);
  }

  /** The node serving `key`: `host:port` of its slot's master (of the server, for a single Redis). */
  nodeOf(key: string): string {
    const client = this.#client;
    if (!isCluster(client)) return this.#server;
    if (client.status !== 'ready') return WHOLE_CLUSTER;
    const slot = new Command('exists', [key], { keyPrefix: client.options.keyPrefix }).getSlot();
    return client.slots[slot]?.[0] ?? WHOLE_CLUSTER;
  }

  /** Whether calls for keys on `node` currently skip Redis. */
  isDown(node: string): boolean {
    return this.#circuits.has(node);
  }

  /**
   * Runs `command` (a Redis call for `key` only) unless `key`'s node is known to be down, in
   * which case it throws `RedisNodeUnavailableError` at once. A call that fails or outlasts
   * `timeoutMs` marks the node down and rethrows.
   */
  call<T>(key: string, command: () => Promise<T>, timeoutMs = this.#timeoutMs): Promise<T> {
    const node = this.nodeOf(key);
    const circuit = this.#circuits.get(node);
    if (circuit) {
      if (circuit.state !== 'trial') {
        return Promise.reject(new RedisNodeUnavailableError(node, circuit.cause));
      }
      circuit.state = 'trying';
    }
    let answer: Promise<T>;
    try {
      if (this.#client.status !== 'ready') {
        throw new Error(`connection is ${this.#client.status}`);
      }
      answer = withTimeout(command(), timeoutMs, redisTimeout(timeoutMs));
    } catch (error) {
      this.#failed(node, error);
      return Promise.reject(error);
    }
    // Chained rather than awaited: the request path's Redis call costs one promise fewer.
    return answer.then(
      (result) => {
        if (circuit && this.#circuits.get(node) === circuit) this.#back(node, circuit, 'recovered');
        return result;
      },
      (error: unknown) => {
        this.#failed(node, error);
        throw error;
      },
    );
  }

  /** Stops probing. */
  close(): void {
    this.#closed = true;
    this.#client.off('ready', this.#onReady);
    for (const circuit of this.#circuits.values()) clearTimeout(circuit.timer);
    this.#circuits.clear();
  }

  #failed(node: string, cause: unknown): void {
    if (this.#closed) return;
    const circuit = this.#circuits.get(node);
    if (circuit) {
      // A failed trial, or a call sent before the node was known down: still down, already said so.
      if (circuit.state === 'down') return;
      circuit.state = 'down';
      circuit.cause = cause;
      this.#probeLater(node, circuit);
      return;
    }
    const created: Circuit = { state: 'down', cause };
    this.#circuits.set(node, created);
    this.#logger.warn(this.#downMessage(node, cause));
    this.#probeLater(node, created);
  }

  #downMessage(node: string, cause: unknown): string {
    const reason = describeError(cause);
    if (!isCluster(this.#client) && reason.startsWith('MOVED ')) {
      return (
        `[keygate] Redis at ${node} is a node of a Redis Cluster (it answered ${reason}): connect ` +
        'with connectRedisCluster() (REDIS_CLUSTER_NODES for the reference app and the CLI), not ' +
        `a single-node URL; meanwhile ${this.#whileDown}`
      );
    }
    return `[keygate] ${this.#label(node)} unreachable (${reason}); ${this.#whileDown} until it is back`;
  }

  #label(node: string): string {
    if (!isCluster(this.#client)) return `Redis at ${node}`;
    return node === WHOLE_CLUSTER ? 'Redis Cluster' : `Redis Cluster node ${node}`;
  }

  #back(node: string, circuit: Circuit, how: 'recovered' | 'failed over'): void {
    clearTimeout(circuit.timer);
    this.#circuits.delete(node);
    this.#logger.info(
      how === 'recovered'
        ? `[keygate] ${this.#label(node)} recovered; ${this.#whenBack}`
        : `[keygate] ${this.#label(node)} no longer serves any slot (a replica took over); ${this.#whenBack}`,
    );
  }

  #probeLater(node: string, circuit: Circuit): void {
    clearTimeout(circuit.timer);
    circuit.timer = setTimeout(() => void this.#probe(node, circuit), this.#recheckIntervalMs);
    circuit.timer.unref();
  }

  async #probe(node: string, circuit: Circuit): Promise<void> {
    const current = () => !this.#closed && this.#circuits.get(node) === circuit;
    const client = this.#client;
    if (isCluster(client) && node !== WHOLE_CLUSTER) {
      // Requests skip this node, so no MOVED reply will tell ioredis about a failover: ask the cluster.
      await withTimeout(
        new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve())),
        this.#timeoutMs,
        redisTimeout(this.#timeoutMs),
      ).catch(() => {});
      if (!current() || circuit.state !== 'down') return;
      if (client.status === 'ready' && !client.slots.some((nodes) => nodes?.[0] === node)) {
        this.#back(node, circuit, 'failed over');
        return;
      }
    }
    const answered = await this.#ping(node);
    if (!current() || circuit.state !== 'down') return;
    if (answered) circuit.state = 'trial';
    else this.#probeLater(node, circuit);
  }

  async #ping(node: string): Promise<boolean> {
    const client = this.#client;
    if (client.status !== 'ready') return false;
    if (!isCluster(client)) {
      return withTimeout(client.ping(), this.#timeoutMs, redisTimeout(this.#timeoutMs)).then(
        () => true,
        () => false,
      );
    }
    if (node === WHOLE_CLUSTER) return true;
    // A connection of its own: the Cluster's connection to a lost node may be gone from its pool.
    const separator = node.lastIndexOf(':');
    const probe = new Redis({
      ...client.options.redisOptions,
      host: node.slice(0, separator),
      port: Number(node.slice(separator + 1)),
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: null,
      maxRetriesPerRequest: 0,
      connectTimeout: this.#timeoutMs,
    });
    probe.on('error', () => {});
    try {
      await withTimeout(probe.ping(), this.#timeoutMs, redisTimeout(this.#timeoutMs));
      return true;
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }
}

export function requirePositive(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `${name} must be a positive number (got ${String(value)})`,
    );
  }
}
