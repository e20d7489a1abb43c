import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import type { RedisClient } from './client.js';
import { RedisInvalidationBus } from './invalidation.js';

/**
 * A client from another copy of ioredis than this package's (an app's own install, or the other
 * module format): nothing about it is `instanceof` our ioredis classes, only its shape is the same.
 */
function foreignClient(isCluster: boolean) {
  const subscriber = Object.assign(new EventEmitter(), {
    subscribe: vi.fn(async () => 1),
    disconnect: vi.fn(),
  });
  const client = {
    isCluster,
    status: 'ready',
    options: { redisOptions: { password: 'from-the-app' } },
    duplicate: vi.fn(() => subscriber),
  };
  return { client, subscriber };
}

async function subscribeThrough(client: unknown, subscriber: EventEmitter): Promise<void> {
  const bus = new RedisInvalidationBus({ client: client as RedisClient, logger: console });
  const subscribed = bus.subscribe(
    () => {},
    () => {},
  );
  subscriber.emit('ready');
  await subscribed;
  await bus.close();
}

describe('RedisInvalidationBus with a client from another copy of ioredis', () => {
  it('subscribes through a Cluster as a Cluster, keeping its node options', async () => {
    const { client, subscriber } = foreignClient(true);
    await subscribeThrough(client, subscriber);
    expect(client.duplicate).toHaveBeenCalledWith([], {
      redisOptions: expect.objectContaining({ password: 'from-the-app', autoResubscribe: false }),
    });
    expect(subscriber.subscribe).toHaveBeenCalledWith('keygate:invalidate');
  });

  it('subscribes through a single connection as one', async () => {
    const { client, subscriber } = foreignClient(false);
    await subscribeThrough(client, subscriber);
    expect(client.duplicate).toHaveBeenCalledWith(
      expect.objectContaining({ autoResubscribe: false, lazyConnect: false }),
    );
    expect(subscriber.subscribe).toHaveBeenCalledWith('keygate:invalidate');
  });
});
