import { connectRedis, RedisInvalidationBus, SUBSCRIBER_CONNECTION_NAME } from '@keygate/redis';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  connectSharedRedis,
  deleteKeys,
  freePort,
  SHARED_REDIS_URL,
  startRedisServer,
  uniqueName,
  waitFor,
} from './support/redis.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function client(url: string): Redis {
  // A patient client, so a busy machine does not drop a publish; a down Redis is still skipped at once.
  const redis = connectRedis(url, { commandTimeout: 5_000 });
  cleanup.push(() => redis.disconnect());
  return redis;
}

async function readyClient(url: string): Promise<Redis> {
  const redis = client(url);
  await waitFor('the client to connect', () => redis.status === 'ready');
  return redis;
}

function bus(redis: Redis, namespace: string) {
  const logger = { warn: vi.fn(), info: vi.fn() };
  const created = new RedisInvalidationBus({ client: redis, namespace, timeoutMs: 5_000, logger });
  cleanup.push(() => created.close());
  return { bus: created, logger };
}

function listener() {
  const received: string[] = [];
  const onReset = vi.fn();
  return { received, onReset, onInvalidate: (id: string) => received.push(id) };
}

describe('RedisInvalidationBus', () => {
  it('delivers a published key id to another instance within a second', async () => {
    const namespace = uniqueName('keygate-test');
    const publisher = bus(await readyClient(SHARED_REDIS_URL), namespace);
    const subscriber = bus(client(SHARED_REDIS_URL), namespace);
    const other = listener();
    await subscriber.bus.subscribe(other.onInvalidate, other.onReset);

    const sent = Date.now();
    await publisher.bus.publish('key_123');
    await waitFor('the invalidation to arrive', () => other.received.length === 1, 1_000);
    expect(Date.now() - sent).toBeLessThan(1_000);
    expect(other.received).toEqual(['key_123']);
    expect(other.onReset).not.toHaveBeenCalled();
    expect(subscriber.logger.warn).not.toHaveBeenCalled();
  });

  it('ignores other namespaces', async () => {
    const ours = bus(await readyClient(SHARED_REDIS_URL), uniqueName('keygate-test'));
    const theirs = bus(await readyClient(SHARED_REDIS_URL), uniqueName('keygate-test'));
    const mine = listener();
    await ours.bus.subscribe(mine.onInvalidate, mine.onReset);
    await theirs.bus.publish('key_other');
    await ours.bus.publish('key_mine');
    await waitFor('our invalidation', () => mine.received.includes('key_mine'), 1_000);
    expect(mine.received).toEqual(['key_mine']);
  });

  it('calls onReset once the subscription is back after Redis restarts', async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.kill());
    const namespace = uniqueName('keygate-test');
    const publisherClient = await readyClient(server.url);
    const subscriber = bus(client(server.url), namespace);
    const publisher = bus(publisherClient, namespace);
    const other = listener();
    await subscriber.bus.subscribe(other.onInvalidate, other.onReset);

    await server.kill();
    await waitFor('the loss to be noticed', () =>
      subscriber.logger.warn.mock.calls.some(([line]) => /subscription lost/.test(line)),
    );
    // Publishing while Redis is down neither throws nor waits (for the bus's 5 s timeout).
    const started = performance.now();
    await publisher.bus.publish('key_lost');
    expect(performance.now() - started).toBeLessThan(2_500);
    // One line for the outage, one for the change that could not be sent.
    expect(publisher.logger.warn.mock.calls.map(([message]) => message)).toEqual([
      expect.stringMatching(/Redis at 127\.0\.0\.1:\d+ unreachable/),
      expect.stringMatching(/could not publish the invalidation of key key_lost/),
    ]);

    const revived = await startRedisServer({ port: server.port });
    cleanup.push(() => revived.kill());
    await waitFor('onReset', () => other.onReset.mock.calls.length === 1, 15_000);
    expect(subscriber.logger.info).toHaveBeenCalledWith(
      '[keygate] cache invalidation subscription restored; dropping cached keys',
    );

    await waitFor('the publisher to reconnect', () => publisherClient.status === 'ready', 15_000);
    await publisher.bus.publish('key_after');
    await waitFor('the invalidation after the restart', () => other.received.includes('key_after'));
    expect(other.received).toEqual(['key_after']);
    expect(other.onReset).toHaveBeenCalledTimes(1);
  });

  it('does not hold up subscribe() when Redis is unreachable, and resets once it is reachable', async () => {
    const port = await freePort();
    const namespace = uniqueName('keygate-test');
    const subscriber = bus(client(`redis://127.0.0.1:${port}`), namespace);
    const other = listener();
    const started = performance.now();
    await subscriber.bus.subscribe(other.onInvalidate, other.onReset);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(subscriber.logger.warn).toHaveBeenCalledTimes(1);

    const server = await startRedisServer({ port });
    cleanup.push(() => server.kill());
    await waitFor('onReset', () => other.onReset.mock.calls.length === 1, 15_000);
    const publisher = bus(await readyClient(server.url), namespace);
    await waitFor('the publisher', async () => {
      await publisher.bus.publish('key_1');
      return other.received.includes('key_1');
    });
  });
});

describe('RedisInvalidationBus never loses a change silently', () => {
  it('drops the cache when a change number is skipped, or the counter in Redis is ahead of what arrived', async () => {
    const namespace = uniqueName('keygate-test');
    const admin = await connectSharedRedis();
    cleanup.push(async () => {
      await deleteKeys(admin, `${namespace}:*`);
      admin.disconnect();
    });
    const publisher = bus(await readyClient(SHARED_REDIS_URL), namespace);
    const subscriber = bus(await readyClient(SHARED_REDIS_URL), namespace);
    const other = listener();
    await subscriber.bus.subscribe(other.onInvalidate, other.onReset);
    await publisher.bus.publish('key_1');
    await waitFor('the first change', () => other.received.includes('key_1'));
    expect(await admin.get(publisher.bus.counterKey)).toBe('1');

    // Change 2 is counted but never arrives (lost between nodes); change 3 shows the gap.
    await admin.incr(publisher.bus.counterKey);
    await publisher.bus.publish('key_3');
    await waitFor('the third change', () => other.received.includes('key_3'));
    expect(other.onReset).toHaveBeenCalledTimes(1);
    expect(subscriber.logger.warn).toHaveBeenLastCalledWith(
      '[keygate] cache invalidation: change 2 did not arrive; dropping cached keys',
    );

    // The last change is lost and nothing follows: the periodic check of the counter finds it.
    await admin.incr(publisher.bus.counterKey);
    await waitFor(
      'the reset for the lost last change',
      () => other.onReset.mock.calls.length === 2,
    );
    expect(subscriber.logger.warn).toHaveBeenLastCalledWith(
      '[keygate] cache invalidation: change 4 did not arrive; dropping cached keys',
    );

    // Redis lost the counter (restarted without persistence, say): changes numbered anew may have gone unseen.
    await admin.del(publisher.bus.counterKey);
    await waitFor('the reset for the lost counter', () => other.onReset.mock.calls.length === 3);
    expect(subscriber.logger.warn).toHaveBeenLastCalledWith(
      expect.stringMatching(/the change counter went back from 4 to 0/),
    );

    // Something that is not a change keygate published.
    await admin.publish(publisher.bus.channel, 'not a change');
    await waitFor(
      'the reset for an unreadable message',
      () => other.onReset.mock.calls.length === 4,
    );

    await publisher.bus.publish('key_5');
    await waitFor('the next change', () => other.received.includes('key_5'));
    expect(other.received).toEqual(['key_1', 'key_3', 'key_5']);
    expect(other.onReset).toHaveBeenCalledTimes(4);
  });

  it('resets once, with one line, when its connection is killed, and keeps receiving', async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.kill());
    const namespace = uniqueName('keygate-test');
    const admin = new Redis(server.url);
    cleanup.push(() => admin.disconnect());
    const publisher = bus(await readyClient(server.url), namespace);
    const subscriber = bus(await readyClient(server.url), namespace);
    const other = listener();
    await subscriber.bus.subscribe(other.onInvalidate, other.onReset);

    const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    expect(list).toContain(`name=${SUBSCRIBER_CONNECTION_NAME}`);
    expect(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).toBe(1);
    await waitFor('the reset', () => other.onReset.mock.calls.length === 1);
    expect(subscriber.logger.info).toHaveBeenCalledWith(
      '[keygate] cache invalidation: the subscriber connection dropped; subscribed again, dropping cached keys',
    );
    expect(subscriber.logger.warn).not.toHaveBeenCalled();

    await publisher.bus.publish('key_after');
    await waitFor('the change after the reconnect', () => other.received.includes('key_after'));
    expect(other.onReset).toHaveBeenCalledTimes(1);
  });
});
