import { type InvalidationBus, KeygateConfigError } from '@keygate/core';
import type { Cluster } from 'ioredis';
import {
  describeError,
  isReady,
  type RedisClient,
  type RedisLogger,
  withTimeout,
} from './client.js';

export interface RedisInvalidationBusOptions {
  /** ioredis client, ideally from `connectRedis()`; publishes on it and subscribes on a duplicate. Required. */
  client: RedisClient;
  /** Pub/sub channel: `<namespace>:invalidate`. Default `'keygate'`. */
  namespace?: string;
  /** Longest `publish()` waits for Redis before giving up (logged, not thrown), in ms. Default 100. */
  timeoutMs?: number;
  /** Receives subscription losses (`warn`), recoveries (`info`) and failed publishes (`warn`). Default `console`. */
  logger?: RedisLogger;
}

interface Listener {
  onInvalidate: (keyId: string) => void;
  onReset: () => void;
}

/**
 * Carries key invalidations between instances over Redis pub/sub; each message is a key id.
 * The subscription runs on its own connection; after it was interrupted, every listener's
 * `onReset` is called once it is active again, since messages sent meanwhile are lost.
 */
export class RedisInvalidationBus implements InvalidationBus {
  readonly #client: RedisClient;
  readonly #channel: string;
  readonly #timeoutMs: number;
  readonly #logger: RedisLogger;
  readonly #listeners = new Set<Listener>();
  #subscriber: RedisClient | null = null;
  #subscribed = false;
  #interrupted = false;
  #closed = false;
  /** Settles when the first subscription is active or the first connection attempt has failed. */
  #started: Promise<void> | null = null;
  #settleStarted: () => void = () => {};

  constructor(options: RedisInvalidationBusOptions) {
    const { client, namespace = 'keygate', timeoutMs = 500, logger = console } = options;
    if (!client) {
      throw new KeygateConfigError('INVALID_OPTION', 'RedisInvalidationBus needs a client');
    }
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new KeygateConfigError('INVALID_OPTION', 'timeoutMs must be a positive number');
    }
    this.#client = client;
    this.#channel = `${namespace}:invalidate`;
    this.#timeoutMs = timeoutMs;
    this.#logger = logger;
  }

  /** The pub/sub channel in use. */
  get channel(): string {
    return this.#channel;
  }

  async publish(keyId: string): Promise<void> {
    try {
      if (!isReady(this.#client)) throw new Error(`connection is ${this.#client.status}`);
      await withTimeout(this.#client.publish(this.#channel, keyId), this.#timeoutMs);
    } catch (error) {
      this.#logger.warn(
        `[keygate] could not publish the invalidation of key ${keyId} (${describeError(error)}); ` +
          'other instances drop it when their cache entry expires',
      );
    }
  }

  /**
   * Resolves once the subscription is active, or as soon as a first connection attempt
   * fails; the subscriber then keeps reconnecting and calls `onReset` when it gets through.
   */
  async subscribe(onInvalidate: (keyId: string) => void, onReset: () => void): Promise<void> {
    if (this.#closed) throw new Error('RedisInvalidationBus is closed');
    this.#listeners.add({ onInvalidate, onReset });
    this.#started ??= this.#startSubscriber();
    await this.#started;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#settleStarted();
    this.#subscriber?.disconnect();
    this.#subscriber = null;
  }

  #startSubscriber(): Promise<void> {
    const started = new Promise<void>((resolve) => {
      this.#settleStarted = resolve;
    });
    const subscriber = duplicateForSubscribing(this.#client);
    this.#subscriber = subscriber;
    subscriber.on('error', () => {});
    subscriber.on('ready', () => this.#resubscribe(subscriber));
    subscriber.on('close', () => this.#lost());
    subscriber.on('message', (channel: string, keyId: string) => {
      if (channel !== this.#channel) return;
      for (const listener of this.#listeners) listener.onInvalidate(keyId);
    });
    return started;
  }

  #resubscribe(subscriber: RedisClient): void {
    subscriber.subscribe(this.#channel).then(
      () => this.#active(),
      (error: unknown) => {
        this.#logger.warn(
          `[keygate] cache invalidation: SUBSCRIBE failed (${describeError(error)}); reconnecting`,
        );
        // Reconnecting brings another 'ready', which retries the subscription.
        subscriber.disconnect(true);
      },
    );
  }

  #active(): void {
    if (this.#closed) return;
    this.#subscribed = true;
    this.#settleStarted();
    if (!this.#interrupted) return;
    this.#interrupted = false;
    this.#logger.info('[keygate] cache invalidation subscription restored; dropping cached keys');
    for (const listener of this.#listeners) listener.onReset();
  }

  #lost(): void {
    if (this.#closed || this.#interrupted) return;
    this.#interrupted = true;
    this.#logger.warn(
      this.#subscribed
        ? '[keygate] cache invalidation subscription lost; changes made elsewhere reach this instance when it is restored'
        : '[keygate] cache invalidation cannot reach Redis yet; subscribing when it is reachable',
    );
    this.#subscribed = false;
    // A failed first attempt must not hold up startup; the subscription follows when Redis is back.
    this.#settleStarted();
  }
}

/** A second connection for pub/sub: a subscribed connection can run no other command. */
function duplicateForSubscribing(client: RedisClient): RedisClient {
  const overrides = {
    // The bus resubscribes itself on 'ready' so it knows when the subscription is active again.
    autoResubscribe: false,
    lazyConnect: false,
    // No request waits on this connection, so a slow SUBSCRIBE need not cost a reconnect.
    commandTimeout: 2_000,
  };
  if (isCluster(client)) {
    return client.duplicate([], { redisOptions: { ...client.options.redisOptions, ...overrides } });
  }
  return client.duplicate(overrides);
}

/** ioredis's own flag rather than `instanceof`: the app's client may come from another copy of ioredis. */
function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster;
}
