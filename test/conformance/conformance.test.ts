import { createKeygate, type Keygate, KeyManagementError, MemoryKeyStore } from '@keygate/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as data from '../../examples/shared/src/data.js';
import { DemoSessions } from '../../examples/shared/src/session.js';
import { type CaseContext, type CaseRequest, type ConformanceCase, cases } from './cases.js';
import { adapters, type RawResponse, type RunningApp, rawRequest, startApp } from './harness.js';

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

function handlerRuns(): number {
  return [data.visibleWebsites, data.websiteAnalytics, data.linkAnalytics].reduce(
    (runs, read) => runs + vi.mocked(read).mock.calls.length,
    0,
  );
}

const running: Array<{ app: RunningApp; keygate: Keygate }> = [];

afterEach(async () => {
  for (const { app, keygate } of running.splice(0)) {
    await app.close();
    await keygate.close();
  }
});

async function arrange(
  adapter: (typeof adapters)[number],
  testCase: ConformanceCase,
): Promise<{ app: RunningApp; ctx: CaseContext; keygate: Keygate; ids: Map<string, string> }> {
  const store = new MemoryKeyStore();
  const sessions = new DemoSessions();
  const keygate = createKeygate({
    store,
    authFailureLimit: false,
    ...(testCase.sessions ? { session: sessions.resolver } : {}),
    ...testCase.options,
  });
  const secrets = new Map<string, string>();
  const ids = new Map<string, string>();
  for (const [name, { state, ...input }] of Object.entries(testCase.keys ?? {})) {
    const issued = await keygate.keys.create(input);
    secrets.set(name, issued.secret);
    ids.set(name, issued.key.id);
    if (state === 'revoked') await keygate.keys.revoke(issued.key.id);
    // The API refuses a past expiry, so the key expires in the store, as time would make it.
    if (state === 'expired') {
      await store.update(issued.key.id, { expiresAt: new Date(Date.now() - 1000) });
    }
  }
  const cookies = new Map<string, string>();
  for (const [name, session] of Object.entries(testCase.sessions ?? {})) {
    cookies.set(name, sessions.issue(session).cookie);
  }
  const app = await startApp(adapter, keygate, {
    trustProxy: testCase.trustProxy,
    host: testCase.host,
  });
  running.push({ app, keygate });
  const lookup = (map: Map<string, string>, name: string) => {
    const value = map.get(name);
    if (value === undefined) throw new Error(`the case defines no ${name}`);
    return value;
  };
  return {
    app,
    ctx: { key: (name) => lookup(secrets, name), cookie: (name) => lookup(cookies, name) },
    keygate,
    ids,
  };
}

async function send(app: RunningApp, request: CaseRequest): Promise<RawResponse> {
  if (request.rawHeaders) {
    return rawRequest(app, {
      method: request.method,
      target: request.path,
      headers: [...Object.entries(request.headers ?? {}), ...request.rawHeaders],
    });
  }
  const response = await fetch(`${app.origin}${request.path}`, {
    method: request.method ?? 'GET',
    headers: request.headers,
    body: request.body,
  });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  };
}

describe.each(adapters)('$name reference app', (adapter) => {
  it.each(cases)('$name', async (testCase) => {
    const { app, ctx } = await arrange(adapter, testCase);
    for (const [index, step] of testCase.steps.entries()) {
      const label = `step ${index + 1}`;
      const runsBefore = handlerRuns();
      const response = await send(app, step.request(ctx));

      expect(response.status, label).toBe(step.status);
      if (step.body !== undefined) {
        expect(response.headers['content-type'], label).toMatch(/^application\/json/);
        expect(JSON.parse(response.body), label).toEqual(step.body);
      }
      if (step.headers) expect(response.headers, label).toMatchObject(step.headers);
      for (const name of step.absentHeaders ?? []) {
        expect(response.headers, `${label}: ${name}`).not.toHaveProperty(name);
      }
      if (step.handlerRan !== undefined) {
        expect(handlerRuns() - runsBefore, `${label}: handler runs`).toBe(step.handlerRan ? 1 : 0);
      }
    }
  });
});

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
