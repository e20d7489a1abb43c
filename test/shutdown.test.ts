/**
 * SIGTERM under keep-alive load, on each reference app run as its own process: it must exit on
 * its own within its deadline (`KEYGATE_SHUTDOWN_MS`), with every request it served counted in the
 * database, however the clients and the database behave.
 */
import net from 'node:net';
import { createKeygate } from '@keygate/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { faultProxy } from './support/fault-proxy.js';
import { steadyLoad } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { startAppProcess, stopAppProcesses } from './support/processes.js';
import { waitFor } from './support/redis.js';

const ROUTE = '/v1/websites/w_1/analytics';
const FRAMEWORKS = ['hono', 'express', 'koa'] as const;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => stopAppProcesses());

async function databaseWithKey(): Promise<{ database: TestDatabase; secret: string; id: string }> {
  const database = await createTestDatabase();
  cleanups.push(() => database.close());
  const keygate = createKeygate({ store: database.store, auditSinks: [database.auditSink] });
  const { secret, key } = await keygate.keys.create({ name: 'load', scopes: ['read:data'] });
  await keygate.close();
  return { database, secret, id: key.id };
}

/** A client that sends half a request and then nothing: a server that waited for it would never stop. */
function stalledClient(origin: string): net.Socket {
  const { hostname, port } = new URL(origin);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => {});
  socket.write(`GET ${ROUTE} HTTP/1.1\r\nHost: ${hostname}\r\nX-Api-Key: sk_live_`);
  cleanups.push(async () => socket.destroy());
  return socket;
}

describe.each(FRAMEWORKS)('%s reference app on SIGTERM', (framework) => {
  it('exits by itself under 50-connection keep-alive load, every served request counted', async () => {
    const { database, secret, id } = await databaseWithKey();
    const app = await startAppProcess(framework, {
      DATABASE_URL: database.url,
      KEYGATE_SHUTDOWN_MS: '10000',
    });
    const load = steadyLoad(app.origin, { path: ROUTE, headers: { 'x-api-key': secret } }, 50);
    await waitFor('the load to be served', () => load.count(200) >= 300, 30_000);
    stalledClient(app.origin);

    app.signal('SIGTERM');
    const { statuses, closedByServer, errors } = await load.done;
    const { code } = await app.exited;

    expect(code).toBe(0);
    expect(app.output()).toMatch(/shutdown finished in \d+ ms/);
    expect(app.output()).not.toMatch(/could not be written/);
    // A busy connection's next request is answered with `Connection: close`; only one that brought
    // none for 500 ms is closed under the client, who can lose at most the one request it then sends.
    expect(closedByServer).toBeGreaterThan(0);
    expect(errors).toBeLessThanOrEqual(50);
    expect([...statuses.keys()]).toEqual([200]);
    const [usage] = await database.sql<[{ served: number }]>`
      select coalesce(sum(authenticated), 0)::int as served from keygate_usage_counts
      where key_id = ${id}`;
    expect(usage!.served).toBe(statuses.get(200));
  });
});

describe('a reference app whose database goes silent', () => {
  it('still exits on SIGTERM within its deadline, saying what it could not write', async () => {
    const { database, secret } = await databaseWithKey();
    const proxy = await faultProxy(database.url);
    cleanups.push(() => proxy.close());
    const app = await startAppProcess('hono', {
      DATABASE_URL: proxy.url,
      KEYGATE_SHUTDOWN_MS: '3000',
    });
    const load = steadyLoad(app.origin, { path: ROUTE, headers: { 'x-api-key': secret } }, 10);
    await waitFor('the load to be served', () => load.count(200) >= 100, 30_000);
    proxy.set('silent');

    app.signal('SIGTERM');
    await load.done;
    const { code } = await app.exited;

    // Cut short at its deadline (exit code 1), never waiting on the database beyond it.
    expect(code).toBe(1);
    expect(app.output()).toMatch(/shutdown cut short at \d+ ms \(deadline 3000 ms\)/);
    expect(app.output()).toMatch(/could not be written before close/);
  });
});
