/**
 * A private Redis Cluster for tests: `masters` masters, each with one replica, every node a
 * `redis-server --cluster-enabled yes` on free loopback ports (client and cluster-bus port both
 * chosen free), created with `redis-cli --cluster create`. Nodes are stopped by PID; the
 * shared Redis on 6379 is never touched.
 *
 * Replicas start with `cluster-replica-no-failover yes`, so a busy test machine cannot trigger a
 * failover by accident; `allowFailover(replica)` lets one take over its dead master, as an
 * operator's unguarded cluster would. `cluster-require-full-coverage no` keeps the healthy
 * masters serving while a master is down, as the package README recommends.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command, Redis } from 'ioredis';
import { freePort, type RedisServer, startRedisServer, waitFor } from './redis.js';

const run = promisify(execFile);

export interface ClusterNodeServer extends RedisServer {
  /** `127.0.0.1:<port>`, as the cluster and ioredis name the node. */
  address: string;
}

export interface RedisClusterServers {
  nodes: ClusterNodeServer[];
  /** `host:port,host:port,...` of every node, the form of `REDIS_CLUSTER_NODES`. */
  seeds: string;
  /** The node currently serving `key`'s slot as master, as the live nodes see it. */
  masterOf(key: string): Promise<ClusterNodeServer>;
  /** The masters serving slots, as the live nodes see them. */
  masters(): Promise<ClusterNodeServer[]>;
  /** The replica of `master`. */
  replicaOf(master: ClusterNodeServer): Promise<ClusterNodeServer>;
  /** Lets `replica` fail over (it was started with `cluster-replica-no-failover yes`). */
  allowFailover(replica: ClusterNodeServer): Promise<void>;
  /** A plain connection to one node, closed by `stop()`. */
  connection(node: ClusterNodeServer): Redis;
  /** Kills every node (by PID) and closes the connections. */
  stop(): Promise<void>;
}

/** The slot of a key, as Redis computes it (hash tags included). */
export function slotOf(key: string): number {
  return new Command('exists', [key]).getSlot();
}

export async function startRedisCluster(
  options: { masters?: number; nodeTimeoutMs?: number } = {},
): Promise<RedisClusterServers> {
  const { masters = 3, nodeTimeoutMs = 1_000 } = options;
  const nodes: ClusterNodeServer[] = [];
  const connections = new Set<Redis>();
  const stop = async () => {
    for (const connection of connections) connection.disconnect();
    await Promise.all(nodes.map((node) => node.kill()));
  };
  try {
    for (let i = 0; i < masters * 2; i++) {
      const server = await startRedisServer({
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-port',
          String(await freePort()),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          '--cluster-require-full-coverage',
          'no',
          '--cluster-replica-no-failover',
          'yes',
          // However long a test keeps a master down, its replica may still take over when allowed.
          '--cluster-replica-validity-factor',
          '0',
        ],
      });
      nodes.push({ ...server, address: `127.0.0.1:${server.port}` });
    }
    // The first `masters` nodes become masters, the others their replicas.
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((node) => node.address),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
  } catch (error) {
    await stop();
    throw error;
  }

  const connect = (node: ClusterNodeServer) => {
    const connection = new Redis(node.url, { maxRetriesPerRequest: 1 });
    connection.on('error', () => {});
    connections.add(connection);
    return connection;
  };
  const admin = new Map(nodes.map((node) => [node, connect(node)]));
  const alive = () => nodes.filter((node) => admin.get(node)!.status === 'ready');
  const byAddress = (address: string) => {
    const node = nodes.find((n) => n.address === address);
    if (!node) throw new Error(`no node ${address} in this cluster`);
    return node;
  };
  /** `CLUSTER SHARDS`-like view from one live node: [start, end, master address] per range. */
  const slotRanges = async (): Promise<Array<[number, number, string]>> => {
    const reply = (await admin.get(alive()[0]!)!.call('CLUSTER', 'SLOTS')) as Array<
      [number, number, [string, number]]
    >;
    return reply.map(([start, end, [host, port]]) => [start, end, `${host}:${port}`]);
  };

  const cluster: RedisClusterServers = {
    nodes,
    seeds: nodes.map((node) => node.address).join(','),
    async masterOf(key) {
      const slot = slotOf(key);
      const range = (await slotRanges()).find(([start, end]) => slot >= start && slot <= end);
      if (!range) throw new Error(`slot ${slot} has no master`);
      return byAddress(range[2]);
    },
    async masters() {
      const addresses = new Set((await slotRanges()).map(([, , address]) => address));
      return [...addresses].map(byAddress);
    },
    async replicaOf(master) {
      const [id] = String(await admin.get(master)!.call('CLUSTER', 'MYID')).split('\n');
      const lines = String(await admin.get(alive()[0]!)!.call('CLUSTER', 'NODES')).split('\n');
      const line = lines.find((l) => l.split(' ')[3] === id);
      if (!line) throw new Error(`${master.address} has no replica`);
      return byAddress(line.split(' ')[1]!.split('@')[0]!);
    },
    async allowFailover(replica) {
      await admin.get(replica)!.call('CONFIG', 'SET', 'cluster-replica-no-failover', 'no');
    },
    connection: (node) => admin.get(node)!,
    stop,
  };

  // Every node must agree the cluster is whole before a client is pointed at it.
  await waitFor(
    'the cluster to be ready on every node',
    async () => {
      const states = await Promise.all(
        nodes.map((node) =>
          admin
            .get(node)!
            .call('CLUSTER', 'INFO')
            .then(String, () => ''),
        ),
      );
      return states.every(
        (s) => s.includes('cluster_state:ok') && s.includes(`cluster_known_nodes:${nodes.length}`),
      );
    },
    30_000,
  ).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return cluster;
}
