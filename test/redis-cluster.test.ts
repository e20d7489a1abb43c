import type { RateLimitPolicy } from '@keygate/core';
import {
  connectRedisCluster,
  RedisAuthFailureGuard,
  RedisInvalidationBus,
  RedisRateLimiter,
} from '@keygate/redis';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RedisServer, startRedisServer, uniqueName, waitFor } from './support/redis.js';

let server: RedisServer;
let node: Redis;
let cluster: Cluster;

/** A one-node Redis Cluster holding all 16,384 slots; it refuses cross-slot commands like any cluster. The announced IP makes CLUSTER SLOTS name the node. */
beforeAll(async () => {
  server = await startRedisServer({
    args: ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1'],
  });
  node = new Redis(server.url);
  await node.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  await waitFor('the cluster to be ready', async () =>
    String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok'),
  );
  // Generous timeouts: these tests check slots and semantics, not the fallback, on a possibly busy machine.
  cluster = connectRedisCluster([{ host: '127.0.0.1', port: server.port }], {
    redisOptions: { commandTimeout: 5_000 },
  });
  await waitFor('the cluster client', () => cluster.status === 'ready');
});

afterAll(async () => {
  cluster?.disconnect();
  node?.disconnect();
  await server?.kill();
});

const policies: RateLimitPolicy[] = [
  { name: 'burst', kind: 'token-bucket', capacity: 3, refillPerSecond: 1e-6 },
  { name: 'daily', kind: 'fixed-window', limit: 100, windowSeconds: 86_400 },
];

describe('on a Redis Cluster', () => {
  it('refuses a script whose keys span slots (so the next test proves something)', async () => {
    await expect(
      cluster.eval('return 1', 2, 'keygate:rl:{a}', 'keygate:lease:{b}'),
    ).rejects.toThrow(/CROSSSLOT/);
  });

  it('rate-limits with one script call in one slot per subject', async () => {
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = new RedisRateLimiter({ client: cluster, timeoutMs: 5_000, logger });
    for (const subject of [uniqueName('key'), uniqueName('key'), 'key{with}braces']) {
      const results = await Promise.all(
        Array.from({ length: 6 }, () => limiter.consume(subject, policies)),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(3);
      // One hash holds every policy, in the slot of the subject's hash tag.
      const key = limiter.keyOf(subject);
      expect(await node.call('CLUSTER', 'KEYSLOT', key)).toBe(
        await node.call('CLUSTER', 'KEYSLOT', `{${subject}}`),
      );
      expect(await node.hget(key, limiter.fieldOf('daily', 'count'))).toBe('3');
      expect(await node.hexists(key, limiter.fieldOf('burst', 'tokens'))).toBe(1);
    }
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it('guards failed authentications', async () => {
    const guard = new RedisAuthFailureGuard({
      client: cluster,
      timeoutMs: 5_000,
      points: 1,
      blockSeconds: 60,
    });
    const ip = `10.${Math.floor(Math.random() * 250)}.0.1`;
    expect(await guard.recordFailure(ip)).toBe(0);
    expect(await guard.recordFailure(ip)).toBe(60);
  });

  it('carries invalidations', async () => {
    const namespace = uniqueName('keygate-test');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const options = { client: cluster, namespace, timeoutMs: 5_000, logger };
    const subscriber = new RedisInvalidationBus(options);
    const publisher = new RedisInvalidationBus(options);
    const received: string[] = [];
    await subscriber.subscribe((id) => received.push(id), vi.fn());
    // ioredis may move a new Cluster's subscriber connection once right after it starts, so publish until heard.
    await waitFor('the invalidation', async () => {
      await publisher.publish('key_cluster');
      return received.includes('key_cluster');
    });
    await subscriber.close();
    // On a loaded machine the first subscription attempt may time out and be retried; nothing else may go wrong.
    for (const [message] of logger.warn.mock.calls) {
      expect(message).toMatch(/cannot reach Redis yet; subscribing when it is reachable/);
    }
  });
});
