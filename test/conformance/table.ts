/**
 * The conformance table as suites: every case of `cases.ts` against each adapter's reference
 * app, and the audit trail of a key sent in the query string. A test file that runs it mocks
 * `examples/shared/src/data.js` as `conformance.test.ts` does, so handler runs can be counted.
 */
import { createKeygate, type Keygate, MemoryKeyStore } from '@keygate/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as data from '../../examples/shared/src/data.js';
import { DemoSessions } from '../../examples/shared/src/session.js';
import { type CaseContext, type CaseRequest, type ConformanceCase, cases } from './cases.js';
import {
  type Adapter,
  type RawResponse,
  type RunningApp,
  rawRequest,
  startApp,
} from './harness.js';

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
  adapter: Adapter,
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

/** An adapter under the name its suites carry, e.g. `express 4`. */
export interface ConformanceTarget {
  label: string;
  adapter: Adapter;
}

/** Registers the reference-app table and the audit-trail check for each of `targets`. */
export function describeConformance(targets: ConformanceTarget[]): void {
  describe.each(targets)('$label reference app', ({ adapter }) => {
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
          expect(handlerRuns() - runsBefore, `${label}: handler runs`).toBe(
            step.handlerRan ? 1 : 0,
          );
        }
      }
    });
  });

  describe.each(targets)('$label audit trail', ({ adapter }) => {
    it('records a key sent in the query string by its start, never the secret', async () => {
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
      await keygate.audit.flush();

      const response = await fetch(`${app.origin}/v1/api-keys/${ids.get('reader')}/events`, {
        headers: { authorization: `Bearer ${ctx.key('admin')}` },
      });
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(text).not.toContain(secret.slice(start.length));
      expect(JSON.parse(text)).toEqual({
        success: true,
        data: expect.arrayContaining([
          expect.objectContaining({
            action: 'auth.succeeded',
            keyStart: start,
            path: '/v1/websites/w_1/analytics',
          }),
        ]),
      });
      const everything = JSON.stringify(await keygate.auditReader?.query({ limit: 1_000 }));
      expect(everything).toContain('/v1/websites/w_1/analytics');
      expect(everything).not.toContain(secret);
    });
  });
}
