import {
  type AuditEvent,
  type AuditQueueFullPolicy,
  type AuditSink,
  createKeygate,
  type Keygate,
  type KeygateOptions,
} from '@keygate/core';
import { afterEach, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { HttpClient, type SentRequest } from './support/http.js';

/** A sink whose every write hangs until the test opens it, as a database that stopped answering. */
class StuckSink implements AuditSink {
  readonly written: AuditEvent[] = [];
  writes = 0;
  resolved = 0;
  readonly #opened: Promise<void>;
  open!: () => void;

  constructor() {
    this.#opened = new Promise((resolve) => {
      this.open = resolve;
    });
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    this.writes++;
    await this.#opened;
    this.written.push(...events);
    this.resolved++;
  }
}

const quiet = { warn: () => {}, error: () => {} };
const running: Array<{ app: RunningApp; keygate: Keygate; sink: StuckSink }> = [];

afterEach(async () => {
  for (const { app, keygate, sink } of running.splice(0)) {
    sink.open();
    await app.close();
    await keygate.close();
  }
});

async function start(auditQueue: KeygateOptions['auditQueue']) {
  const sink = new StuckSink();
  const keygate = createKeygate({ auditSinks: [sink], auditQueue, logger: quiet });
  const { secret } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const app = await startApp(adapters.find((a) => a.name === 'hono')!, keygate);
  running.push({ app, keygate, sink });
  const client = new HttpClient(app.origin, 20);
  const requests = (count: number, tag: string): SentRequest[] =>
    Array.from({ length: count }, (_, i) => ({
      path: '/v1/query/websites',
      headers: { 'x-api-key': secret, 'x-request-id': `${tag}-${i}` },
    }));
  return { sink, keygate, client, requests };
}

describe('a request does not wait for the audit sink', () => {
  it('answers 200 requests while the sink has not finished a single write', async () => {
    const { sink, keygate, client, requests } = await start({ batchSize: 10 });
    const answers = await client.sendAll(requests(200, 'r'), 20);
    client.close();
    expect(answers.map((a) => a.status)).toEqual(new Array(200).fill(200));
    expect(sink.writes).toBe(1);
    expect(sink.resolved).toBe(0);
    // Key created, then authentication and scope check for each request: all still waiting.
    expect(keygate.audit.pending).toBe(1 + 2 * 200);
    expect(keygate.audit.dropped).toBe(0);

    sink.open();
    await keygate.audit.flush();
    expect(sink.written).toHaveLength(1 + 2 * 200);
    expect(new Set(sink.written.map((e) => e.requestId)).size).toBe(1 + 200);
  });

  const cases: Array<{ policy: AuditQueueFullPolicy; keeps: string }> = [
    { policy: 'drop-oldest', keeps: 'the newest queued events' },
    { policy: 'drop-newest', keeps: 'the oldest queued events' },
    { policy: 'keep', keeps: 'every event, past the bound' },
  ];

  it.each(cases)(
    'a full queue under $policy keeps $keeps, and counts what it gives up',
    async ({ policy }) => {
      const { sink, keygate, client, requests } = await start({
        batchSize: 5,
        maxQueue: 10,
        onQueueFull: policy,
      });
      const first = await client.sendAll(requests(200, 'burst'), 20);
      const [last] = await client.sendAll(requests(1, 'last'), 1);
      client.close();
      expect([...first, last!].every((a) => a.status === 200)).toBe(true);
      expect(sink.resolved).toBe(0);

      // One write of 5 events is stuck in flight; 10 more may wait; the rest is the policy's.
      const recorded = 1 + 2 * 201;
      const inFlight = 5;
      if (policy === 'keep') {
        expect(keygate.audit.dropped).toBe(0);
        expect(keygate.audit.overflowed).toBe(recorded - inFlight - 10);
        expect(keygate.audit.pending).toBe(recorded);
      } else {
        expect(keygate.audit.dropped).toBe(recorded - inFlight - 10);
        expect(keygate.audit.overflowed).toBe(0);
        expect(keygate.audit.pending).toBe(inFlight + 10);
      }

      sink.open();
      await keygate.audit.flush();
      const written = sink.written;
      expect(written.length + keygate.audit.dropped).toBe(recorded);
      // The stuck batch was already written out of the queue: the key's creation and the first requests.
      expect(written[0]!.action).toBe('key.created');
      const lastWritten = written.filter((e) => e.requestId === 'last-0');
      if (policy === 'drop-newest') expect(lastWritten).toHaveLength(0);
      else expect(lastWritten.map((e) => e.action)).toEqual(['auth.succeeded', 'scope.checked']);
    },
  );
});
