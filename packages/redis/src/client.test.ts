import { describe, expect, it } from 'vitest';
import { redisConnectionFromEnv } from './backends.js';
import { parseRedisClusterNodes } from './client.js';

describe('parseRedisClusterNodes', () => {
  it('reads host:port lists, with spaces and IPv6 hosts', () => {
    expect(parseRedisClusterNodes(' 10.0.0.1:7000, redis-b:7001 ,[::1]:7002,redis-c')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b', port: 7001 },
        { host: '::1', port: 7002 },
        { host: 'redis-c', port: 6379 },
      ],
      redisOptions: {},
    });
  });

  it('takes credentials and TLS from URL entries, for every node', () => {
    expect(parseRedisClusterNodes('rediss://app:s%3Acret@a:6380,b:6380')).toEqual({
      nodes: [
        { host: 'a', port: 6380 },
        { host: 'b', port: 6380 },
      ],
      redisOptions: { username: 'app', password: 's:cret', tls: {} },
    });
  });

  it('refuses what is not a node, without repeating a password', () => {
    expect(() => parseRedisClusterNodes(' , ')).toThrow(/host:port/);
    expect(() => parseRedisClusterNodes('a:7000,b:port')).toThrow(/"b:port"/);
    expect(() => parseRedisClusterNodes('http://a:7000')).toThrow(/not a Redis Cluster node/);
    let message = '';
    try {
      parseRedisClusterNodes('redis://user:hunter2@:7000');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/not a Redis Cluster node/);
    expect(message).not.toContain('hunter2');
  });
});

describe('redisConnectionFromEnv', () => {
  it('picks the cluster, the single Redis, or nothing', () => {
    expect(redisConnectionFromEnv({ REDIS_CLUSTER_NODES: 'a:7000,b:7001' })).toEqual({
      clusterNodes: 'a:7000,b:7001',
    });
    expect(redisConnectionFromEnv({ REDIS_URL: 'redis://r:6379' })).toEqual({
      url: 'redis://r:6379',
    });
    expect(redisConnectionFromEnv({ REDIS_URL: '', REDIS_CLUSTER_NODES: ' ' })).toBeNull();
  });

  it('refuses both at once, and a bad node list before connecting', () => {
    expect(() =>
      redisConnectionFromEnv({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'a:7000' }),
    ).toThrow(/not both/);
    expect(() => redisConnectionFromEnv({ REDIS_CLUSTER_NODES: 'a:7000,:x' })).toThrow(
      /not a Redis Cluster node/,
    );
  });

  it('takes KEYGATE_REDIS_TIMEOUT_MS as the timeout, for either kind', () => {
    expect(
      redisConnectionFromEnv({ REDIS_URL: 'redis://r:6379', KEYGATE_REDIS_TIMEOUT_MS: ' 2500 ' }),
    ).toEqual({ url: 'redis://r:6379', timeoutMs: 2500 });
    expect(
      redisConnectionFromEnv({ REDIS_CLUSTER_NODES: 'a:7000', KEYGATE_REDIS_TIMEOUT_MS: '60000' }),
    ).toEqual({ clusterNodes: 'a:7000', timeoutMs: 60_000 });
    expect(
      redisConnectionFromEnv({ REDIS_URL: 'redis://r:6379', KEYGATE_REDIS_TIMEOUT_MS: '' }),
    ).toEqual({ url: 'redis://r:6379' });
  });

  it('refuses a KEYGATE_REDIS_TIMEOUT_MS that is not a whole number of ms from 1 to 60000', () => {
    for (const value of ['0', '-5', '1.5', '2s', 'abc', '60001', '1e3', 'Infinity']) {
      expect(
        () =>
          redisConnectionFromEnv({ REDIS_URL: 'redis://r:6379', KEYGATE_REDIS_TIMEOUT_MS: value }),
        value,
      ).toThrow(
        `KEYGATE_REDIS_TIMEOUT_MS must be a whole number of milliseconds from 1 to 60000 (got ${value})`,
      );
    }
  });
});
