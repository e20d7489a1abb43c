import { type InvalidationBus, KeygateConfigError, withTimeout } from '@keygate/core';
import { type Cluster, Redis, type RedisOptions } from 'ioredis';
import {
  describeError,
  isCluster,
  type RedisClient,
  type RedisLogger,
  reconnectDelay,
  redisTimeout,
} from './client.js';
import { RedisNodeHealth, requirePositive } from './node-health.js';

export interface RedisInvalidationBusOptions {
  /** ioredis client or Cluster, ideally from `connectRedis()` / `connectRedisCluster()`. Required. */
  client: RedisClient;
  /** Channel `<namespace>:invalidate`; change counter `<namespace>:invalidate:seq`. Default `'keygate'`. */
  namespace?: string;
  /** Longest `publish()` waits for Redis before giving up (logged, not thrown), in ms. Default 500. */
  timeoutMs?: number;
  /** How often the change counter in Redis is compared with the last change received, in ms. Default 500. */
  gapCheckIntervalMs?: number;
  /** Receives subscription losses and missed changes (`warn`), recoveries (`info`) and failed publishes (`warn`). Default `console`. */
  logger?: RedisLogger;
  /** Outage tracking per node, shared with the other components on the same client. Default: its own. */
  nodeHealth?: RedisNodeHealth;
}

interface Listener {
  onInvalidate: (keyId: string) => void;
  onReset: () => void;
  onLost?: ((cause: string) => void) | undefined;
}

const PUBLISH_COMMAND = 'keygatePublishInvalidation';
type PublishCommand = Record<
  typeof PUBLISH_COMMAND,
  (counterKey: string, channel: string, keyId: string) => Promise<number>
>;

/** Numbers the change and publishes it with its number in one step, so a subscriber can tell one it missed. */
const PUBLISH_SCRIPT = `
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], seq .. ':' .. ARGV[2])
return seq
`;

/** The number of a change published while the counter's node was down: it invalidates its key only. */
const UNNUMBERED = '-';

/** The subscriber connection's name in `CLIENT LIST`. */
export const SUBSCRIBER_CONNECTION_NAME = 'keygate-invalidation';

/**
 * `starting`: the first connection is being made. `active`: subscribed. `reconnecting`: an
 * active connection dropped and a new one is being made at once, not yet logged. `lost`: no
 * subscription, logged; retried with backoff.
 */
type Phase = 'starting' | 'active' | 'reconnecting' | 'lost' | 'closed';

/**
 * Carries key invalidations between instances over Redis pub/sub. Each change is numbered by a
 * counter in Redis as it is published (`<number>:<key id>`), so a subscriber that sees a number
 * skipped, or the counter ahead of what it received, drops its whole cache. The subscription
 * runs on a connection of its own, to one node (on a Cluster, preferably the counter's, whose
 * messages then need no hop between nodes); whenever that connection drops, for whatever reason,
 * a new one is made at once and, once subscribed, every listener's `onReset` is called, since
 * changes published meanwhile were not received. Each such event is logged once.
 */
export class RedisInvalidationBus implements InvalidationBus {
  readonly #client: RedisClient;
  readonly #channel: string;
  readonly #counterKey: string;
  readonly #timeoutMs: number;
  readonly #gapCheckIntervalMs: number;
  readonly #logger: RedisLogger;
  readonly #nodeHealth: RedisNodeHealth;
  readonly #ownsNodeHealth: boolean;
  readonly #listeners = new Set<Listener>();
  #phase: Phase = 'starting';
  #subscriber: Redis | null = null;
  /** Connection attempts that failed in a row. */
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #gapTimer: NodeJS.Timeout | undefined;
  /** A check is running (they are not overlapped). */
  #checking = false;
  /** Highest change number received or covered by a reset on this subscription; null until known. */
  #applied: number | null = null;
  /** The counter at the last check, when it was ahead of `#applied`: due by the next check. */
  #due: number | null = null;
  /** Settles when the first subscription is active or the first connection attempt has failed. */
  #started: Promise<void> | null = null;
  #settleStarted: () => void = () => {};

  constructor(options: RedisInvalidationBusOptions) {
    const {
      client,
      namespace = 'keygate',
      timeoutMs = 500,
      gapCheckIntervalMs = 500,
      logger = console,
      nodeHealth,
    } = options;
    if (!client) {
      throw new KeygateConfigError('INVALID_OPTION', 'RedisInvalidationBus needs a client');
    }
    requirePositive('timeoutMs', timeoutMs);
    requirePositive('gapCheckIntervalMs', gapCheckIntervalMs);
    this.#client = client;
    this.#channel = `${namespace}:invalidate`;
    this.#counterKey = `${namespace}:invalidate:seq`;
    this.#timeoutMs = timeoutMs;
    this.#gapCheckIntervalMs = gapCheckIntervalMs;
    this.#logger = logger;
    this.#ownsNodeHealth = !nodeHealth;
    this.#nodeHealth =
      nodeHealth ??
      new RedisNodeHealth({
        client,
        timeoutMs,
        logger,
        whileDown:
          'invalidations published here may reach other instances only when their cache entries expire',
        whenBack: 'invalidations are numbered again',
      });
    client.defineCommand(PUBLISH_COMMAND, { numberOfKeys: 1, lua: PUBLISH_SCRIPT });
  }

  /** The pub/sub channel in use. */
  get channel(): string {
    return this.#channel;
  }

  /** The Redis key counting the changes published on the channel. */
  get counterKey(): string {
    return this.#counterKey;
  }

  async publish(keyId: string): Promise<void> {
    const client = this.#client;
    try {
      await this.#nodeHealth.call(
        this.#counterKey,
        () =>
          (client as unknown as PublishCommand)[PUBLISH_COMMAND](
            this.#counterKey,
            this.#channel,
            keyId,
          ),
        this.#timeoutMs,
      );
      return;
    } catch (error) {
      let failure = error;
      // On a Cluster another master can still broadcast the change, without a number.
      const relay = isCluster(client) ? this.#relayNode(client) : undefined;
      if (relay) {
        try {
          await withTimeout(
            relay.publish(this.#channel, `${UNNUMBERED}:${keyId}`),
            this.#timeoutMs,
            redisTimeout(this.#timeoutMs),
          );
          return;
        } catch (relayError) {
          failure = relayError;
        }
      }
      this.#logger.warn(
        `[keygate] could not publish the invalidation of key ${keyId} (${describeError(failure)}); ` +
          'other instances may serve it from their cache meanwhile: those that cannot reach Redis ' +
          'either check it with the key store again within their busDownTtlMs (1 s by default), ' +
          'the others when their cache entry expires (ttlMs, 30 s by default)',
      );
    }
  }

  /** A master not known to be down, connected ones first. */
  #relayNode(cluster: Cluster): Redis | undefined {
    return cluster
      .nodes('master')
      .filter((node) => !this.#nodeHealth.isDown(nodeKey(node)))
      .sort((x, y) => Number(y.status === 'ready') - Number(x.status === 'ready'))[0];
  }

  /**
   * Resolves once the subscription is active, or as soon as a first connection attempt
   * fails; the subscriber then keeps reconnecting and calls `onReset` when it gets through.
   */
  async subscribe(
    onInvalidate: (keyId: string) => void,
    onReset: () => void,
    onLost?: (cause: string) => void,
  ): Promise<void> {
    if (this.#phase === 'closed') throw new Error('RedisInvalidationBus is closed');
    this.#listeners.add({ onInvalidate, onReset, onLost });
    this.#started ??= this.#start();
    await this.#started;
  }

  async close(): Promise<void> {
    this.#phase = 'closed';
    this.#listeners.clear();
    clearTimeout(this.#retryTimer);
    clearInterval(this.#gapTimer);
    this.#settleStarted();
    this.#subscriber?.disconnect();
    this.#subscriber = null;
    if (this.#ownsNodeHealth) this.#nodeHealth.close();
  }

  #isClosed(): boolean {
    return this.#phase === 'closed';
  }

  #start(): Promise<void> {
    const started = new Promise<void>((resolve) => {
      this.#settleStarted = resolve;
    });
    this.#gapTimer = setInterval(() => void this.#check(), this.#gapCheckIntervalMs);
    this.#gapTimer.unref();
    void this.#connect();
    return started;
  }

  async #connect(): Promise<void> {
    if (this.#isClosed()) return;
    const target = await this.#target();
    if (this.#isClosed()) return;
    if (!target) {
      this.#attemptFailed(new Error('no Redis Cluster node is reachable'));
      return;
    }
    const subscriber = new Redis({
      ...target,
      connectionName: SUBSCRIBER_CONNECTION_NAME,
      lazyConnect: false,
      // One connection per attempt: when it ends, the bus makes the next one, to the node it picks.
      retryStrategy: () => null,
      enableOfflineQueue: true,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      // No request waits on this connection, so a slow SUBSCRIBE need not cost a reconnect.
      commandTimeout: 2_000,
    });
    this.#subscriber = subscriber;
    this.#applied = null;
    this.#due = null;
    let lastError: unknown = new Error('connection closed');
    subscriber.on('error', (error: unknown) => {
      lastError = error;
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (subscriber === this.#subscriber && channel === this.#channel) this.#receive(message);
    });
    subscriber.once('end', () => this.#dropped(subscriber, lastError));
    subscriber.subscribe(this.#channel).then(
      () => this.#subscribed(subscriber),
      (error: unknown) => {
        lastError = error;
        subscriber.disconnect();
      },
    );
  }

  /** Where the next subscriber connects: the client's server, or a Cluster node (the counter's first). */
  async #target(): Promise<RedisOptions | null> {
    const client = this.#client;
    if (!isCluster(client)) return { ...client.options };
    if (client.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          client.off('ready', done);
          resolve();
        };
        const timer = setTimeout(done, 2_000);
        client.once('ready', done);
      });
    }
    const counterNode = this.#nodeHealth.nodeOf(this.#counterKey);
    const nodes = client
      .nodes('all')
      .filter((node) => !this.#nodeHealth.isDown(nodeKey(node)))
      .sort((a, b) => Number(nodeKey(b) === counterNode) - Number(nodeKey(a) === counterNode));
    if (nodes.length === 0) return null;
    // After failures, move on to the next node rather than retrying the same one.
    return { ...nodes[this.#failures % nodes.length]!.options };
  }

  #subscribed(subscriber: Redis): void {
    if (subscriber !== this.#subscriber || this.#phase === 'closed') return;
    const previous = this.#phase;
    this.#phase = 'active';
    this.#failures = 0;
    this.#settleStarted();
    const where = isCluster(this.#client) ? ` on ${nodeKey(subscriber)}` : '';
    if (previous === 'reconnecting') {
      this.#reset(
        'info',
        `[keygate] cache invalidation: the subscriber connection dropped; subscribed again${where}, dropping cached keys`,
      );
    } else if (previous === 'lost') {
      this.#reset(
        'info',
        `[keygate] cache invalidation subscription restored${where}; dropping cached keys`,
      );
    }
    void this.#check();
  }

  #dropped(subscriber: Redis, cause: unknown): void {
    if (subscriber !== this.#subscriber || this.#phase === 'closed') return;
    this.#subscriber = null;
    if (this.#phase === 'active') {
      // Changes published from now on are lost to this instance until it subscribes again: at once.
      this.#phase = 'reconnecting';
      this.#lost(cause);
      void this.#connect();
      return;
    }
    this.#attemptFailed(cause);
  }

  /** Tells the listeners that take it that changes go unheard; whether any did (and logged it). */
  #lost(cause: unknown): boolean {
    let told = false;
    for (const listener of this.#listeners) {
      if (!listener.onLost) continue;
      listener.onLost(`Redis subscription: ${describeError(cause)}`);
      told = true;
    }
    return told;
  }

  #attemptFailed(cause: unknown): void {
    if (this.#phase === 'starting' && this.#lost(cause)) {
      // A failed first attempt must not hold up startup; the listeners said what it means.
      this.#settleStarted();
    } else if (this.#phase === 'starting') {
      this.#logger.warn(
        `[keygate] cache invalidation cannot reach Redis yet (${describeError(cause)}); subscribing when it is reachable`,
      );
      // A failed first attempt must not hold up startup; the subscription follows when Redis is back.
      this.#settleStarted();
    } else if (this.#phase === 'reconnecting' && !this.#hasLostListener()) {
      this.#logger.warn(
        `[keygate] cache invalidation subscription lost (${describeError(cause)}); changes made elsewhere reach this instance when it is restored`,
      );
    }
    this.#phase = 'lost';
    this.#failures += 1;
    this.#retryTimer = setTimeout(() => void this.#connect(), reconnectDelay(this.#failures));
    this.#retryTimer.unref();
  }

  #hasLostListener(): boolean {
    for (const listener of this.#listeners) if (listener.onLost) return true;
    return false;
  }

  #receive(message: string): void {
    const separator = message.indexOf(':');
    const number = message.slice(0, separator);
    const keyId = message.slice(separator + 1);
    if (separator < 1 || keyId === '' || !(number === UNNUMBERED || /^\d+$/.test(number))) {
      this.#reset(
        'warn',
        `[keygate] cache invalidation: unreadable message on ${this.#channel}; dropping cached keys`,
      );
      return;
    }
    for (const listener of this.#listeners) listener.onInvalidate(keyId);
    if (number === UNNUMBERED) return;
    const seq = Number(number);
    const applied = this.#applied;
    if (applied !== null && seq > applied + 1) this.#missed(applied, seq - 1);
    if (applied === null || seq > applied) this.#applied = seq;
  }

  /** Runs every `gapCheckIntervalMs` while subscribed, and once each time a subscription starts. */
  async #check(): Promise<void> {
    const subscriber = this.#subscriber;
    if (this.#phase !== 'active' || this.#checking || !subscriber) return;
    this.#checking = true;
    try {
      await Promise.all([this.#checkSubscriber(subscriber), this.#checkCounter(subscriber)]);
    } finally {
      this.#checking = false;
    }
  }

  /** A subscription on a stalled node receives nothing while its connection stays open: move it. */
  async #checkSubscriber(subscriber: Redis): Promise<void> {
    try {
      // Bounded by the connection's own command timeout.
      await subscriber.ping();
    } catch {
      if (subscriber === this.#subscriber) subscriber.disconnect();
    }
  }

  /** Compares the change counter in Redis with what this subscription has received. */
  async #checkCounter(subscriber: Redis): Promise<void> {
    const client = this.#client;
    if (client.status !== 'ready') return;
    // Every change received so far was counted before the counter is read.
    const before = this.#applied;
    let counter: number;
    try {
      counter = Number(
        await this.#nodeHealth.call(this.#counterKey, () => client.get(this.#counterKey)),
      );
    } catch {
      // The counter's node is down; the node health has said so.
      return;
    }
    // Let messages already read from the socket be handled before judging.
    await new Promise((resolve) => setImmediate(resolve));
    if (subscriber !== this.#subscriber || this.#phase !== 'active') return;
    if (before !== null && counter < before) {
      this.#reset(
        'warn',
        `[keygate] cache invalidation: the change counter went back from ${before} to ${counter} (Redis lost it); dropping cached keys`,
      );
      this.#applied = counter;
    } else if (this.#applied === null) {
      this.#applied = counter;
    } else if (this.#due !== null && this.#applied < this.#due) {
      this.#missed(this.#applied, this.#due);
      this.#applied = Math.max(this.#applied, counter);
    }
    this.#due = counter > this.#applied ? counter : null;
  }

  #missed(after: number, upTo: number): void {
    const which = upTo === after + 1 ? `change ${upTo}` : `changes ${after + 1}–${upTo}`;
    this.#reset(
      'warn',
      `[keygate] cache invalidation: ${which} did not arrive; dropping cached keys`,
    );
  }

  #reset(level: 'warn' | 'info', message: string): void {
    this.#logger[level](message);
    for (const listener of this.#listeners) listener.onReset();
  }
}

function nodeKey(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}
