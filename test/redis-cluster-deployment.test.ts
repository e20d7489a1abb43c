/**
 * Redis Cluster as a deployment: a private cluster of 3 masters + 3 replicas started here, two
 * reference-app processes (Hono and Express) on it and on one Postgres database, configured as
 * an operator would (`REDIS_CLUSTER_NODES`), and an in-process instance failing closed. The
 * tests run in order; the last ones kill a master and let its replica take over.
 */
import { createKeygate, type Keygate, type RateLimitOverride } from '@keygate/core';
import { createRedisBackends, type RedisBackends } from '@keygate/redis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type AppProcess, runCli, startAppProcess, stopAppProcesses } from './support/processes.js';
import { GENEROUS_REDIS_TIMEOUT_MS, waitFor } from './support/redis.js';
import {
  type ClusterNodeServer,
  type RedisClusterServers,
  startRedisCluster,
} from './support/redis-cluster.js';

/**
 * keygate's Redis timeout for every instance here: a healthy master slowed down by a loaded
 * machine must never be taken for down, which would break the exactness asserted on healthy
 * masters. The killed master refuses connections at once, so its loss is noticed without it.
 */
const REDIS_TIMEOUT_MS = GENEROUS_REDIS_TIMEOUT_MS;
/** The longest a health transition (a node lost, a failover followed) is waited for. */
const TRANSITION_MS = 30_000;
/** Per test: these start processes and send hundreds of requests, which a loaded machine slows down. */
const TEST_MS = 120_000;

let cluster: RedisClusterServers;
let database: TestDatabase;
let a: AppProcess;
let b: AppProcess;
/** The core API on the same database, to issue keys as an operator would. */
let keygate: Keygate;
let admin: string;

beforeAll(async () => {
  [cluster, database] = await Promise.all([startRedisCluster(), createTestDatabase()]);
  const env = {
    DATABASE_URL: database.url,
    REDIS_CLUSTER_NODES: cluster.seeds,
    KEYGATE_REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    // Each revoked key is polled from its own address, so the polls do not add up to a blocked IP.
    TRUST_PROXY: '1',
  };
  [a, b] = await Promise.all([startAppProcess('hono', env), startAppProcess('express', env)]);
  keygate = createKeygate({
    store: database.store,
    auditSinks: [database.auditSink],
    cache: false,
    limiter: false,
  });
  // It revokes keys that read data: an admin may only manage keys that reach no further than itself.
  admin = (await keygate.keys.create({ name: 'admin', scopes: ['manage:keys', 'read:data'] }))
    .secret;
  // ioredis connects to a node on its first command: let each process open its connection to
  // every master before anything is measured, as a process that has served traffic has.
  for (const key of await keysOn(await cluster.masters(), 1)) {
    expect([await statusOf(a, key.secret), await statusOf(b, key.secret)]).toEqual([200, 200]);
  }
}, 120_000);

afterAll(async () => {
  await stopAppProcesses();
  await keygate?.close();
  await Promise.allSettled([cluster?.stop(), database?.close()]);
});

const BURST: RateLimitOverride = { burst: 10, perSecond: 0.001, daily: 1_000 };

interface TestKey {
  id: string;
  secret: string;
  /** The master serving the slot of the key's rate-limit state when it was issued. */
  master: ClusterNodeServer;
}

/** The Redis hash of a key's rate-limit state in the reference app (namespace `keygate`). */
function limitsOf(id: string): string {
  return `keygate:rl:{${id}}`;
}

/** Issues keys until each of `masters` serves `perMaster` of them. */
async function keysOn(masters: ClusterNodeServer[], perMaster: number): Promise<TestKey[]> {
  const byMaster = new Map(masters.map((master) => [master, [] as TestKey[]]));
  while ([...byMaster.values()].some((keys) => keys.length < perMaster)) {
    const { key, secret } = await keygate.keys.create({
      name: 'limited',
      scopes: ['read:data'],
      rateLimit: BURST,
    });
    const master = await cluster.masterOf(limitsOf(key.id));
    const keys = byMaster.get(master);
    if (keys && keys.length < perMaster) keys.push({ id: key.id, secret, master });
  }
  return [...byMaster.values()].flat();
}

async function statusOf(app: AppProcess, secret: string, ip = '203.0.113.1'): Promise<number> {
  const response = await fetch(`${app.origin}/v1/query/websites`, {
    headers: { 'x-api-key': secret, 'x-forwarded-for': ip },
  });
  await response.arrayBuffer();
  return response.status;
}

function count(statuses: number[], status: number): number {
  return statuses.filter((s) => s === status).length;
}

function linesOf(app: AppProcess, pattern: RegExp): string[] {
  return app
    .output()
    .split('\n')
    .filter((line) => pattern.test(line));
}

const WEBSITES = '/v1/query/websites';

describe('two app processes on a Redis Cluster', { timeout: TEST_MS }, () => {
  it('admit exactly each key’s burst between them, with keys on every master', async () => {
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    const keys = await keysOn(masters, 2);

    for (const key of keys) {
      const statuses = await Promise.all(
        Array.from({ length: 30 }, (_, i) => statusOf(i % 2 ? b : a, key.secret)),
      );
      expect(count(statuses, 200), `${key.id} on ${key.master.address}`).toBe(10);
      expect(count(statuses, 429)).toBe(20);
      // Kept on the master serving the key's slot.
      expect(await cluster.connection(key.master).exists(limitsOf(key.id))).toBe(1);
    }
  });

  it('loses no revocation while the subscriber connections are dropped again and again', async () => {
    // One at a time: 60 creations at once queue on the pool, past the store's timeout on a loaded machine.
    const issued = [];
    for (let i = 0; i < 60; i++) {
      issued.push(await keygate.keys.create({ name: 'reader', scopes: ['read:data'] }));
    }
    // Both processes serve each key, so both have it in their verification cache.
    for (const { secret } of issued) {
      expect([await statusOf(a, secret), await statusOf(b, secret)]).toEqual([200, 200]);
    }

    const kills: Array<Promise<unknown>> = [];
    const refusals: Array<Promise<number>> = [];
    for (const [i, { key, secret }] of issued.entries()) {
      // Not awaited: the revocation is published while the subscribers reconnect.
      if (i % 3 === 0) kills.push(killSubscribers());
      const response = await fetch(`${a.origin}/v1/api-keys/${key.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      await response.arrayBuffer();
      expect(response.status).toBe(200);
      refusals.push(refusedBy(b, secret, performance.now()));
    }
    await Promise.all(kills);
    const delays = await Promise.all(refusals);
    expect(Math.max(...delays)).toBeLessThan(1_000);
    // The drops did happen, and B said so (once each at most).
    const drops = linesOf(b, /subscriber connection dropped; subscribed again/).length;
    expect(drops).toBeGreaterThan(0);
    expect(drops).toBeLessThanOrEqual(kills.length);
  });
});

describe('configuration from the environment', { timeout: TEST_MS }, () => {
  it('the CLI revokes through REDIS_CLUSTER_NODES, and the other process refuses the key within a second', async () => {
    const { key, secret } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    expect(await statusOf(b, secret)).toBe(200);
    const started = performance.now();
    const revoked = await runCli(['keys', 'revoke', key.id], {
      DATABASE_URL: database.url,
      REDIS_CLUSTER_NODES: cluster.seeds,
      KEYGATE_REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    });
    expect(revoked, revoked.stderr).toMatchObject({ code: 0, stderr: '' });
    const exited = performance.now();
    expect((await refusedBy(b, secret, started)) - (exited - started)).toBeLessThan(1_000);
  });

  it('a cluster node given as REDIS_URL is refused with a clear error, by the app and by the CLI', async () => {
    const node = cluster.nodes[0]!;
    const message = new RegExp(
      `Redis at 127\\.0\\.0\\.1:${node.port} is a node of a Redis Cluster: .*REDIS_CLUSTER_NODES`,
    );
    await expect(
      startAppProcess('koa', { DATABASE_URL: database.url, REDIS_URL: node.url }),
    ).rejects.toThrow(message);

    const { key } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    const refused = await runCli(['keys', 'revoke', key.id], {
      DATABASE_URL: database.url,
      REDIS_URL: node.url,
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(message);
    // Refused before any change was made.
    expect((await keygate.keys.get(key.id)).revokedAt).toBeNull();
  });
});

/** `CLIENT KILL TYPE pubsub` on every live node: both processes lose their subscription. */
async function killSubscribers(): Promise<void> {
  await Promise.all(
    cluster.nodes
      .map((node) => cluster.connection(node))
      .filter((connection) => connection.status === 'ready')
      .map((connection) => connection.call('CLIENT', 'KILL', 'TYPE', 'pubsub')),
  );
}

let pollers = 0;

/** Polls `app` until it refuses `secret` (401); returns the ms since `since`. */
async function refusedBy(app: AppProcess, secret: string, since: number): Promise<number> {
  pollers += 1;
  const ip = `10.14.${pollers >> 8}.${pollers & 255}`;
  for (;;) {
    const status = await statusOf(app, secret, ip);
    const elapsed = performance.now() - since;
    if (status === 401) return elapsed;
    if (elapsed > 5_000)
      throw new Error(`still answered ${status} after ${Math.round(elapsed)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('one master killed', { timeout: TEST_MS }, () => {
  /** An instance that refuses rate-limited requests while the node of their key is down. */
  let failClosed: Keygate;
  let backends: RedisBackends;
  const logged = { warn: vi.fn(), info: vi.fn() };
  let victim: ClusterNodeServer;
  let replica: ClusterNodeServer;
  let keys: TestKey[];

  beforeAll(async () => {
    backends = createRedisBackends({
      clusterNodes: cluster.seeds,
      timeoutMs: REDIS_TIMEOUT_MS,
      onRedisError: 'fail-closed',
      authFailureLimit: { points: 3, durationSeconds: 60, blockSeconds: 60 },
      logger: logged,
    });
    expect(await backends.ready()).toBe(true);
    failClosed = createKeygate({
      store: database.store,
      auditSinks: [],
      limiter: backends.limiter,
      authFailureGuard: backends.failureGuard,
      invalidation: backends.invalidation,
      logger: { warn: vi.fn(), error: vi.fn() },
    });
    // The master holding the change counter: its loss also moves every subscriber and every publish.
    victim = await cluster.masterOf('keygate:invalidate:seq');
    replica = await cluster.replicaOf(victim);
    keys = await keysOn(await cluster.masters(), 2);
  }, TEST_MS);

  afterAll(async () => {
    await failClosed?.close();
    await backends?.close();
  });

  async function closedStatus(secret: string): Promise<number> {
    const decision = await failClosed.authenticate({
      method: 'GET',
      url: WEBSITES,
      headers: new Headers({ 'x-api-key': secret }),
      ip: '203.0.113.10',
    });
    return decision.ok ? 200 : decision.error.status;
  }

  /** 30 requests for `key` at once, spread over both app processes and the fail-closed instance. */
  async function spread(key: TestKey): Promise<{ apps: number[]; failClosed: number[] }> {
    const answers = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        if (i % 3 === 2)
          return { from: 'failClosed' as const, status: await closedStatus(key.secret) };
        return { from: 'apps' as const, status: await statusOf(i % 3 ? b : a, key.secret) };
      }),
    );
    return {
      apps: answers.filter((x) => x.from === 'apps').map((x) => x.status),
      failClosed: answers.filter((x) => x.from === 'failClosed').map((x) => x.status),
    };
  }

  it('keys on the other masters stay exact; memory mode serves every key; fail-closed refuses only keys on the lost master', async () => {
    await victim.kill();
    const onVictim = keys.find((key) => key.master === victim)!;

    // Each instance finds out from one request for a key on the lost master (the only one that waits).
    const first = onVictim.secret;
    expect([await statusOf(a, first), await statusOf(b, first), await closedStatus(first)]).toEqual(
      [200, 200, 503],
    );
    const lost = new RegExp(`Redis Cluster node ${victim.address} unreachable`);
    await waitFor(
      'both processes to log the lost node',
      () => [a, b].every((app) => linesOf(app, lost).length === 1),
      TRANSITION_MS,
    );

    for (const key of keys) {
      const { apps, failClosed: closed } = await spread(key);
      const where = `${key.id} on ${key.master === victim ? 'the lost' : 'a healthy'} master`;
      expect(
        apps.every((s) => s === 200 || s === 429),
        where,
      ).toBe(true);
      if (key.master === victim) {
        // Each app process limits the key on its own, in memory; the fail-closed instance refuses.
        expect(closed, where).toEqual(closed.map(() => 503));
        expect(count(apps, 200), where).toBeGreaterThan(0);
      } else {
        expect(count([...apps, ...closed], 200), where).toBe(10);
        expect(count([...apps, ...closed], 429), where).toBe(20);
      }
    }

    // Known down, the lost master is not even asked: the command is never sent.
    const command = vi.fn(() => Promise.resolve('sent'));
    expect(backends.nodeHealth.isDown(victim.address)).toBe(true);
    await expect(backends.nodeHealth.call(limitsOf(onVictim.id), command)).rejects.toThrow(
      /is down/,
    );
    expect(command).not.toHaveBeenCalled();
  });

  it('counts failed authentications of IPs on the lost master in memory, the others in Redis', async () => {
    const ipOn = async (wanted: (master: ClusterNodeServer) => boolean) => {
      for (let i = 1; ; i++) {
        const ip = `198.51.100.${i}`;
        if (wanted(await cluster.masterOf(`keygate:auth-fail:${ip}`))) return ip;
      }
    };
    const lostIp = await ipOn((master) => master === victim);
    const healthyIp = await ipOn((master) => master !== victim);
    const healthyMaster = await cluster.masterOf(`keygate:auth-fail:${healthyIp}`);
    expect(backends.nodeHealth.isDown(victim.address)).toBe(true);
    expect(backends.nodeHealth.isDown(healthyMaster.address)).toBe(false);
    for (const ip of [lostIp, healthyIp]) {
      const statuses = [];
      for (let i = 0; i < 5; i++) {
        const decision = await failClosed.authenticate({
          method: 'GET',
          url: WEBSITES,
          headers: new Headers({ 'x-api-key': 'sk_live_not-a-key' }),
          ip,
        });
        statuses.push(decision.ok ? 200 : decision.error.status);
      }
      // Three failures allowed, then the IP is blocked: never a 503.
      expect(statuses, ip).toEqual([401, 401, 401, 429, 429]);
    }
    expect(await cluster.connection(healthyMaster).exists(`keygate:auth-fail:${healthyIp}`)).toBe(
      1,
    );
  });

  it('reaches the other process with a revocation while the change counter’s master is down', async () => {
    const { key, secret } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    expect([await statusOf(a, secret), await statusOf(b, secret)]).toEqual([200, 200]);
    const response = await fetch(`${a.origin}/v1/api-keys/${key.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    await response.arrayBuffer();
    expect(response.status).toBe(200);
    expect(await refusedBy(b, secret, performance.now())).toBeLessThan(1_000);
  });

  it('follows the failover without a restart, saying once that the node went and once that it is replaced', async () => {
    await cluster.allowFailover(replica);
    await waitFor(
      'the replica to take over',
      async () =>
        (await cluster.masterOf(limitsOf(keys.find((k) => k.master === victim)!.id))) === replica,
      TRANSITION_MS,
    );
    const replaced = new RegExp(`Redis Cluster node ${victim.address} no longer serves any slot`);
    await waitFor(
      'both processes to follow',
      () => [a, b].every((app) => linesOf(app, replaced).length === 1),
      TRANSITION_MS,
    );
    await waitFor(
      'the fail-closed instance to follow',
      () => logged.info.mock.calls.some(([line]) => replaced.test(String(line))),
      TRANSITION_MS,
    );

    // Keys now on the promoted replica are exact again, and no longer refused.
    for (const key of await keysOn([replica], 2)) {
      const { apps, failClosed: closed } = await spread(key);
      expect(count([...apps, ...closed], 200), key.id).toBe(10);
      expect(count([...apps, ...closed], 429), key.id).toBe(20);
      expect(await cluster.connection(replica).exists(limitsOf(key.id))).toBe(1);
    }

    const lost = new RegExp(`Redis Cluster node ${victim.address} unreachable`);
    for (const app of [a, b]) {
      expect(linesOf(app, lost), app.framework).toHaveLength(1);
      expect(linesOf(app, replaced), app.framework).toHaveLength(1);
    }
    const warned = logged.warn.mock.calls.map(([line]) => String(line));
    expect(warned.filter((line) => lost.test(line))).toHaveLength(1);
  });
});
