/**
 * A keygate instance's webhook worker as a process of its own, to kill mid-delivery: reads its
 * database and options from the environment, starts `PostgresWebhooks`, and prints `started`.
 *
 * WEBHOOK_ENDPOINT_URL, WEBHOOK_SECRET: the operator's endpoint; WORKER_ID: its name in the lease.
 */
import { connectPostgres, PostgresWebhooks } from '@keygate/postgres';

const database = await connectPostgres({ url: process.env.DATABASE_URL! });
const webhooks = new PostgresWebhooks(database.db, {
  endpoints: [{ url: process.env.WEBHOOK_ENDPOINT_URL!, secret: process.env.WEBHOOK_SECRET! }],
  allowLoopback: true,
  instanceId: process.env.WORKER_ID!,
  timeoutMs: 1_000,
  leaseMs: 1_000,
  pollIntervalMs: 100,
  initialBackoffMs: 100,
});
await webhooks.start();
process.stdout.write('started\n');
process.once('SIGTERM', () => {
  void webhooks
    .close()
    .then(() => database.close())
    .then(() => process.exit(0));
});
