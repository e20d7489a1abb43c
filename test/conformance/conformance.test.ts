import http from 'node:http';
import {
  type AuditEvent,
  type AuditSink,
  createKeygate,
  KeyManagementError,
  type UsageRow,
} from '@keygate/core';
import { describe, expect, it, vi } from 'vitest';
import { adapters, rawRequest } from './harness.js';
import { arrange, describeConformance } from './table.js';

// Every GET route's handler reads the synthetic data layer once, so counting those reads counts
// handler runs without touching the apps.
vi.mock(import('../../examples/shared/src/data.js'), async (importOriginal) => {
  const original = await importOriginal();
  return {
    ...original,
    visibleWebsites: vi.fn(original.visibleWebsites),
    websiteAnalytics: vi.fn(original.websiteAnalytics),
    linkAnalytics: vi.fn(original.linkAnalytics),
  };
});

const READER_KEY = { name: 'reader', scopes: ['read:data'] };

describeConformance(adapters.map((adapter) => ({ label: adapter.name, adapter })));

describe.each(adapters)('$name audit trail', (adapter) => {
  it('records a key sent in the query string by its start, never the secret, and counts its uses', async () => {
    const { app, ctx, keygate, ids } = await arrange(adapter, {
      name: 'audit',
      keys: {
        reader: { name: 'reader', scopes: ['read:data'] },
        admin: { name: 'admin', scopes: ['manage:keys'] },
      },
      steps: [],
    });
    const secret = ctx.key('reader');
    const start = secret.slice(0, 'sk_live_'.length + 6);
    const refused = await fetch(`${app.origin}/v1/websites/w_1/analytics?api_key=${secret}0`);
    expect(refused.status).toBe(401);
    const served = await fetch(`${app.origin}/v1/websites/w_1/analytics?x=1&api_key=${secret}`);
    expect(served.status).toBe(200);
    const denied = await fetch(`${app.origin}/v1/llm/traces?x=1&api_key=${secret}`, {
      method: 'POST',
    });
    expect(denied.status).toBe(403);
    await keygate.audit.flush();

    const asAdmin = { headers: { authorization: `Bearer ${ctx.key('admin')}` } };
    const response = await fetch(`${app.origin}/v1/api-keys/${ids.get('reader')}/events`, asAdmin);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).not.toContain(secret.slice(start.length));
    expect(JSON.parse(text)).toEqual({
      success: true,
      data: [
        expect.objectContaining({
          action: 'scope.checked',
          outcome: 'failure',
          keyStart: start,
          path: '/v1/llm/traces',
        }),
        expect.objectContaining({ action: 'key.created' }),
      ],
    });
    const everything = JSON.stringify(await keygate.auditReader?.query({ limit: 1_000 }));
    expect(everything).toContain('/v1/llm/traces');
    expect(everything).not.toContain(secret);

    // Both requests authenticated (served); the denial is also a failure of the key.
    const usage = await fetch(`${app.origin}/v1/api-keys/${ids.get('reader')}/usage`, asAdmin);
    expect(usage.status).toBe(200);
    const { data } = (await usage.json()) as {
      data: { buckets: Array<{ served: number; failed: number; rateLimited: number }> };
    };
    expect(data.buckets).toHaveLength(24);
    expect(data.buckets.at(-1)).toMatchObject({ served: 2, failed: 1, rateLimited: 0 });
  });
});

describe.each(adapters)('$name: secrets outside the key sources', (adapter) => {
  it('a key in the path, user agent or request id reaches the audit trail as its start only', async () => {
    // A sink that wants every event, and one that keeps usage rows: both see the request's fields.
    const events: AuditEvent[] = [];
    const rows: UsageRow[] = [];
    const everyEvent: AuditSink = { write: async (written) => void events.push(...written) };
    const usage: AuditSink = {
      write: async () => {},
      writeUsage: async (batch) => void rows.push(...batch.rows),
    };
    const { app, ctx, keygate } = await arrange(adapter, {
      name: 'leaks',
      keys: { reader: READER_KEY, leaked: READER_KEY },
      steps: [],
      options: { auditSinks: [everyEvent, usage] },
    });
    const leaked = ctx.key('leaked');
    const start = leaked.slice(0, 'sk_live_'.length + 6);
    const sent = [
      `/v1/query/websites;api_key=${leaked}`,
      `/v1/websites/${leaked}/analytics`,
      `/v1/query/websites/${leaked.replace(/_/g, '%5F')}`,
    ];
    for (const path of sent) {
      const response = await rawRequest(app, {
        target: path,
        headers: [
          ['x-api-key', ctx.key('reader')],
          ['user-agent', `scraper/1.0 (${leaked})`],
          ['x-request-id', leaked],
        ],
      });
      expect(response.status).toBeLessThan(500);
    }
    await keygate.audit.flush();
    const recorded = events.filter((e) => e.action === 'auth.succeeded');
    expect(recorded).toHaveLength(sent.length);
    const counted = rows.filter((row) => row.authenticated > 0);
    expect(counted).toHaveLength(sent.length);
    for (const trail of [events, rows]) {
      expect(JSON.stringify(trail)).not.toContain(leaked.slice(start.length, start.length + 20));
    }
    const paths = [
      `/v1/query/websites;api_key=${start}`,
      `/v1/websites/${start}/analytics`,
      `/v1/query/websites/${start}`,
    ].sort();
    expect(recorded.map((e) => e.path).sort()).toEqual(paths);
    expect(counted.map((row) => row.path).sort()).toEqual(paths);
    for (const event of recorded) {
      expect(event).toMatchObject({ userAgent: `scraper/1.0 (${start})`, requestId: start });
    }
    for (const row of counted) expect(row.userAgent).toBe(`scraper/1.0 (${start})`);
  });
});

describe.each(adapters)('$name: management body cap', (adapter) => {
  it('refuses a chunked 30 MB body once the cap is passed, not after reading it whole', async () => {
    const { app, ctx } = await arrange(adapter, {
      name: 'cap',
      keys: { admin: { name: 'admin', scopes: ['manage:keys'] } },
      steps: [],
    });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const total = 30 * 1024 * 1024;
    const { status, body, written } = await new Promise<{
      status: number;
      body: string;
      written: number;
    }>((resolve, reject) => {
      let written = 0;
      let answered = false;
      const request = http.request(`${app.origin}/v1/api-keys`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${ctx.key('admin')}`,
          'content-type': 'application/json',
          'transfer-encoding': 'chunked',
        },
      });
      request.on('response', (response) => {
        answered = true;
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (part: string) => {
          text += part;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: text, written }),
        );
      });
      // The server may close the connection while the rest is still being written.
      request.on('error', (error) => {
        if (!answered) reject(error);
      });
      const pump = () => {
        while (!answered && written < total) {
          written += chunk.length;
          if (!request.write(chunk)) return void request.once('drain', pump);
        }
        if (!answered) request.end();
      };
      request.write('{"name":"');
      pump();
    });
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual({
      success: false,
      error: 'the request body is too large',
      code: 'INVALID_REQUEST',
    });
    // Socket buffers hold some megabytes; a server reading the whole body would take all 30.
    expect(written).toBeLessThan(total / 2);
  });
});

describe('issuing keys', () => {
  it('refuses a public key with a secret-only scope', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    try {
      const refused = keygate.keys.create({
        name: 'browser',
        type: 'public',
        scopes: ['write:llm'],
      });
      await expect(refused).rejects.toBeInstanceOf(KeyManagementError);
      await expect(refused).rejects.toMatchObject({
        code: 'INVALID_REQUEST',
        message: 'scopes: a public key cannot hold write:llm (allowed: track:events, read:config)',
      });
      expect(await keygate.keys.list()).toEqual([]);
    } finally {
      await keygate.close();
    }
  });
});
