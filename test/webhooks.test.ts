/**
 * SPEC §11: webhooks from a Postgres outbox. Events enter the outbox with the change that makes
 * them; a worker (one at a time across instances) delivers them signed per Standard Webhooks,
 * verified here with the `standardwebhooks` package; a worker killed mid-delivery (SIGKILL) loses
 * nothing, and each event is recorded delivered exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createKeygate, type Keygate, newWebhookSecret } from '@keygate/core';
import { PostgresWebhooks } from '@keygate/postgres';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const WORKER = path.resolve(import.meta.dirname, 'support/webhook-worker.ts');

interface Received {
  headers: Record<string, string>;
  body: string;
  respond(status: number): void;
}

/** An endpoint that hands each request to the test, which answers it when it wants. */
async function receiver(): Promise<{
  url: string;
  received: Received[];
  next(): Promise<Received>;
  close(): Promise<void>;
}> {
  const received: Received[] = [];
  const waiting: Array<(r: Received) => void> = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const entry: Received = {
        headers: req.headers as Record<string, string>,
        body,
        respond: (status) => {
          if (!res.writableEnded && !res.destroyed) res.writeHead(status).end();
        },
      };
      received.push(entry);
      const waiter = waiting.shift();
      if (waiter) waiter(entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let seen = 0;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    next: () => {
      const index = seen++;
      if (received[index]) return Promise.resolve(received[index]);
      return new Promise((resolve) => {
        waiting.push(resolve);
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const children = new Set<ChildProcess>();

/** A worker process; resolves once it has saved its endpoint and started. */
function startWorker(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`worker did not start\n${output}`)), 60_000);
    const watch = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('started')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}\n${output}`)));
  });
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

let database: TestDatabase;
let keygate: Keygate;
let endpoint: Awaited<ReturnType<typeof receiver>>;
const secret = newWebhookSecret();

beforeAll(async () => {
  database = await createTestDatabase();
  endpoint = await receiver();
  keygate = createKeygate({ store: database.store, auditSinks: [database.auditSink] });
});

afterAll(async () => {
  await Promise.all([...children].map((child) => kill(child, 'SIGKILL')));
  await keygate?.close();
  await endpoint?.close();
  await database?.close();
});

/** Standard Webhooks' own verification: the payload when the signature holds, else it throws. */
function verified(entry: Received): { type: string; data: Record<string, unknown> } {
  return new Webhook(secret).verify(entry.body, {
    'webhook-id': entry.headers['webhook-id']!,
    'webhook-timestamp': entry.headers['webhook-timestamp']!,
    'webhook-signature': entry.headers['webhook-signature']!,
  }) as { type: string; data: Record<string, unknown> };
}

describe('webhook delivery from the outbox', () => {
  it('survives a worker killed mid-delivery: retried by the next, recorded delivered once, signed per Standard Webhooks', async () => {
    const first = await startWorker({
      DATABASE_URL: database.url,
      WEBHOOK_ENDPOINT_URL: endpoint.url,
      WEBHOOK_SECRET: secret,
      WORKER_ID: 'worker-a',
    });
    const revoked = await keygate.keys.create({ name: 'to revoke', scopes: ['read:data'] });
    await keygate.keys.revoke(revoked.key.id, { id: 'admin_1' });

    // The first attempt arrives; its worker dies before the endpoint answers.
    const inFlight = await endpoint.next();
    expect(verified(inFlight)).toMatchObject({
      type: 'key.revoked',
      data: { keyId: revoked.key.id, keyStart: revoked.key.start, actor: 'admin_1' },
    });
    await kill(first, 'SIGKILL');
    inFlight.respond(200);

    // Two instances start; one takes the worker's turn once the dead one's lapses, and retries.
    const [second, third] = await Promise.all([
      startWorker({
        DATABASE_URL: database.url,
        WEBHOOK_ENDPOINT_URL: endpoint.url,
        WEBHOOK_SECRET: secret,
        WORKER_ID: 'worker-b',
      }),
      startWorker({
        DATABASE_URL: database.url,
        WEBHOOK_ENDPOINT_URL: endpoint.url,
        WEBHOOK_SECRET: secret,
        WORKER_ID: 'worker-c',
      }),
    ]);
    const retry = await endpoint.next();
    expect(retry.headers['webhook-id']).toBe(inFlight.headers['webhook-id']);
    expect(Number(retry.headers['webhook-timestamp'])).toBeGreaterThanOrEqual(
      Number(inFlight.headers['webhook-timestamp']),
    );
    expect(verified(retry).type).toBe('key.revoked');
    retry.respond(200);

    // A second event: the endpoint fails its first attempt, which is retried after a backoff.
    const leaked = await keygate.keys.create({ name: 'to leak', scopes: ['read:data'] });
    await keygate.leaks.report(
      [{ token: leaked.secret, url: 'https://github.com/o/r/blob/1/a', source: 'scan' }],
      { id: 'cli' },
    );
    const events = [await endpoint.next(), await endpoint.next()];
    const byType = new Map(events.map((e) => [verified(e).type, e]));
    expect([...byType.keys()].sort()).toEqual(['key.leaked', 'key.revoked']);
    expect(verified(byType.get('key.leaked')!).data).toMatchObject({
      keyId: leaked.key.id,
      url: 'https://github.com/o/r/blob/1/a',
      containment: 'revoke',
    });
    byType.get('key.leaked')!.respond(503);
    byType.get('key.revoked')!.respond(204);
    const leakRetry = await endpoint.next();
    expect(leakRetry.headers['webhook-id']).toBe(byType.get('key.leaked')!.headers['webhook-id']);
    leakRetry.respond(200);

    // Recorded: each event delivered once, every attempt visible.
    await expect
      .poll(
        async () => {
          const rows =
            await database.sql`select state from keygate_webhook_deliveries where state <> 'succeeded'`;
          return rows.length;
        },
        { timeout: 10_000 },
      )
      .toBe(0);
    const deliveries = await database.sql`select d.id, e.type, e.key_id, d.state, d.attempts,
        (select count(*)::int from keygate_webhook_attempts a where a.delivery_id = d.id and a.succeeded) as successes,
        (select json_agg(a.status order by a.attempt) from keygate_webhook_attempts a where a.delivery_id = d.id) as statuses
      from keygate_webhook_deliveries d join keygate_webhook_events e on e.id = d.event_id order by e.type, e.key_id`;
    expect(deliveries.map((d) => [d.type, d.key_id, d.state, d.successes])).toEqual(
      [
        ['key.leaked', leaked.key.id, 'succeeded', 1],
        ['key.revoked', leaked.key.id, 'succeeded', 1],
        ['key.revoked', revoked.key.id, 'succeeded', 1],
      ].sort((a, b) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`)),
    );
    const killed = deliveries.find((d) => d.key_id === revoked.key.id)!;
    // Attempt 1 died with its worker (nothing recorded); attempt 2 succeeded.
    expect(killed.attempts).toBe(2);
    expect(killed.statuses).toEqual([200]);
    const failedOnce = deliveries.find((d) => d.type === 'key.leaked')!;
    expect(failedOnce.statuses).toEqual([503, 200]);
    // Each request the endpoint got was one of these attempts: no worker sent twice at once.
    expect(endpoint.received).toHaveLength(5);
    const workers = await database.sql`select holder from keygate_webhook_worker`;
    expect(workers).toHaveLength(1);
    await Promise.all([kill(second, 'SIGTERM'), kill(third, 'SIGTERM')]);
  });
});

describe('one worker at a time', () => {
  it('a second instance does not deliver while the first holds the turn', async () => {
    const options = { allowLoopback: true, leaseMs: 60_000 };
    const a = new PostgresWebhooks(database.db, { ...options, instanceId: 'a' });
    const b = new PostgresWebhooks(database.db, { ...options, instanceId: 'b' });
    await database.sql`delete from keygate_webhook_worker`;
    expect((await a.runOnce()).leading).toBe(true);
    expect((await b.runOnce()).leading).toBe(false);
    await a.close();
    expect((await b.runOnce()).leading).toBe(true);
    await b.close();
  });
});

describe('owners manage their endpoints through the router', () => {
  let app: RunningApp;
  let owned: Keygate;
  let admin: string;
  let webhooks: PostgresWebhooks;

  beforeAll(async () => {
    // Only the owner's endpoint listens here: the operator's of the tests above is gone.
    await database.sql`delete from keygate_webhook_endpoints where managed_by = 'config'`;
    webhooks = new PostgresWebhooks(database.db, { allowLoopback: true, initialBackoffMs: 100 });
    owned = createKeygate({ store: database.store, auditSinks: [database.auditSink], webhooks });
    admin = (
      await owned.keys.create({
        name: 'admin',
        ownerId: 'org_hooks',
        scopes: ['manage:keys', 'read:data'],
      })
    ).secret;
    app = await startApp(adapters[0]!, owned);
  });

  afterAll(async () => {
    await app?.close();
    await owned?.close();
  });

  async function call(method: string, route: string, body?: unknown, secret = admin) {
    const response = await fetch(`${app.origin}/v1/api-keys${route}`, {
      method,
      headers: { 'x-api-key': secret, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
    return { status: response.status, json: (await response.json()) as any };
  }

  it('registers an endpoint (its secret shown once), refuses addresses webhooks must not reach, shows each delivery', async () => {
    for (const url of [
      'http://169.254.169.254/latest',
      'https://[::ffff:10.0.0.1]/x',
      'http://example.com/x',
      'https://user:pw@example.com/',
    ]) {
      const refused = await call('POST', '/webhooks', { url });
      expect(refused).toMatchObject({ status: 400, json: { code: 'INVALID_REQUEST' } });
    }
    const created = await call('POST', '/webhooks', { url: endpoint.url, events: ['key.leaked'] });
    expect(created.status).toBe(201);
    expect(created.json.data.secret).toMatch(/^whsec_/);
    const listed = await call('GET', '/webhooks');
    expect(listed.json.data).toEqual([
      expect.objectContaining({ id: created.json.data.id, url: endpoint.url }),
    ]);
    expect(JSON.stringify(listed.json)).not.toContain(created.json.data.secret);

    const key = await owned.keys.create({
      name: 'leaky',
      ownerId: 'org_hooks',
      scopes: ['read:data'],
    });
    const reported = await call('POST', '/leaks', [
      { token: key.secret, url: 'https://pastebin.example/1' },
    ]);
    expect(reported.status).toBe(200);
    const pending = endpoint.next();
    const pass = webhooks.runOnce();
    const delivery = await pending;
    delivery.respond(200);
    expect(await pass).toEqual({ leading: true, delivered: 1 });
    const payload = new Webhook(created.json.data.secret).verify(delivery.body, {
      'webhook-id': delivery.headers['webhook-id']!,
      'webhook-timestamp': delivery.headers['webhook-timestamp']!,
      'webhook-signature': delivery.headers['webhook-signature']!,
    });
    expect(payload).toMatchObject({
      type: 'key.leaked',
      data: { keyId: key.key.id, ownerId: 'org_hooks' },
    });

    const shown = (await call('GET', `/webhooks/deliveries?key=${key.key.id}`)).json.data;
    expect(shown).toEqual([
      expect.objectContaining({
        type: 'key.leaked',
        keyId: key.key.id,
        state: 'succeeded',
        attempts: 1,
        history: [expect.objectContaining({ attempt: 1, status: 200, succeeded: true })],
      }),
    ]);

    const deleted = await call('DELETE', `/webhooks/${created.json.data.id}`);
    expect(deleted.status).toBe(200);
    expect((await call('GET', '/webhooks')).json.data).toEqual([]);
  });
});

describe('key.expiring and key.rate_limited', () => {
  it('raises key.expiring 7 days and 1 day before expiry, and key.rate_limited once an hour, each once', async () => {
    await database.sql`delete from keygate_webhook_endpoints`;
    const webhooks = new PostgresWebhooks(database.db, { allowLoopback: true });
    const limited = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      tiers: { secret: { burst: 1, perSecond: 0.001 } },
      webhooks,
    });
    const owner = 'org_expiry';
    const hook = await webhooks.createEndpoint(owner, { url: endpoint.url });
    const hour = 3_600_000;
    const soon = await limited.keys.create({
      name: 'soon',
      ownerId: owner,
      scopes: ['read:data'],
      expiresAt: new Date(Date.now() + 12 * hour).toISOString(),
    });
    const later = await limited.keys.create({
      name: 'later',
      ownerId: owner,
      scopes: ['read:data'],
      expiresAt: new Date(Date.now() + 3 * 24 * hour).toISOString(),
    });
    await limited.keys.create({
      name: 'far',
      ownerId: owner,
      scopes: ['read:data'],
      expiresAt: new Date(Date.now() + 30 * 24 * hour).toISOString(),
    });

    // Three requests over a burst of one: two refusals, one event.
    const request = {
      method: 'GET',
      url: '/v1/x',
      headers: new Headers({ 'x-api-key': later.secret }),
      ip: '192.0.2.1',
    };
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await limited.authenticate(request)).ok);
    expect(answers).toEqual([true, false, false]);
    await limited.audit.flush();

    const received: string[] = [];
    const answering = (async () => {
      for (let i = 0; i < 4; i++) {
        const entry = await endpoint.next();
        const payload = new Webhook(hook.secret).verify(entry.body, {
          'webhook-id': entry.headers['webhook-id']!,
          'webhook-timestamp': entry.headers['webhook-timestamp']!,
          'webhook-signature': entry.headers['webhook-signature']!,
        }) as { type: string; data: { keyId: string; within?: string } };
        received.push(
          `${payload.type} ${payload.data.keyId === soon.key.id ? 'soon' : 'later'}${payload.data.within ? ` ${payload.data.within}` : ''}`,
        );
        entry.respond(200);
      }
    })();
    await webhooks.runOnce();
    await answering;
    expect(received.sort()).toEqual([
      'key.expiring later 7d',
      'key.expiring soon 1d',
      'key.expiring soon 7d',
      'key.rate_limited later',
    ]);
    // A second pass finds nothing new to raise.
    await database.sql`update keygate_webhook_worker set lease_until = now() - interval '1 second'`;
    const again = new PostgresWebhooks(database.db, { allowLoopback: true });
    expect(await again.runOnce()).toEqual({ leading: true, delivered: 0 });
    const events =
      await database.sql`select id from keygate_webhook_events where owner_id = ${owner}`;
    expect(events).toHaveLength(4);
    await again.close();
    await limited.close();
  });
});
