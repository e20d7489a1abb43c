import net from 'node:net';

/** Tests talk to the real Postgres and Redis; when one is down, say how to start it instead of skipping. */
const SERVICES = [
  {
    name: 'PostgreSQL',
    url: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
  },
  {
    name: 'Redis',
    url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    start:
      'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
  },
];

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export default async function setup(): Promise<void> {
  const down: string[] = [];
  for (const service of SERVICES) {
    if (!(await reachable(service.url))) {
      down.push(
        `${service.name} is not reachable at ${service.url}. Start it with:\n  ${service.start}`,
      );
    }
  }
  if (down.length > 0) throw new Error(`keygate's tests need real services.\n${down.join('\n')}`);
}
