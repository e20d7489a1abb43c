/**
 * The conformance table and what runs it: every case of `cases.ts` against a reference app, and
 * `arrange()`, which starts an app with a case's keys and sessions. A test file that uses it mocks
 * `examples/shared/src/data.js` as `conformance.test.ts` does, so handler runs can be counted.
 */
import { createKeygate, type Keygate, MemoryKeyStore } from '@keygate/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as data from '../../examples/shared/src/data.js';
import { AppSessions } from '../support/app-sessions.js';
import {
  type CaseContext,
  type CaseRequest,
  type ConformanceCase,
  cases,
  securityCases,
} from './cases.js';
import {
  type Adapter,
  type RawResponse,
  type RunningApp,
  rawRequest,
  startApp,
} from './harness.js';
import { pageSessionCases } from './page-session-cases.js';

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

export async function arrange(
  adapter: Adapter,
  testCase: ConformanceCase,
): Promise<{ app: RunningApp; ctx: CaseContext; keygate: Keygate; ids: Map<string, string> }> {
  const store = new MemoryKeyStore();
  const sessions = new AppSessions();
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
  const lookup = (map: Map<string, string>, name: string) => {
    const value = map.get(name);
    if (value === undefined) throw new Error(`the case defines no ${name}`);
    return value;
  };
  const cookies = new Map<string, string>();
  for (const [name, session] of Object.entries(testCase.sessions ?? {})) {
    cookies.set(name, sessions.issue(session).cookie);
  }
  for (const [name, keyName] of Object.entries(testCase.pageSessions ?? {})) {
    cookies.set(name, await signIn(keygate, lookup(secrets, keyName)));
  }
  const app = await startApp(adapter, keygate, {
    trustProxy: testCase.trustProxy,
    host: testCase.host,
  });
  running.push({ app, keygate });
  return {
    app,
    ctx: {
      key: (name) => lookup(secrets, name),
      id: (name) => lookup(ids, name),
      cookie: (name) => lookup(cookies, name),
      origin: app.origin,
    },
    keygate,
    ids,
  };
}

/** A page session signed in with `secret` from the app's own origin: the `Cookie` header value. */
async function signIn(keygate: Keygate, secret: string): Promise<string> {
  const signedIn = await keygate.sessions.signIn({
    secret,
    request: { method: 'POST', url: '/login', headers: new Headers(), ip: '127.0.0.1' },
    origin: 'http://127.0.0.1',
  });
  if (!signedIn.ok) throw new Error(`signing in failed: ${signedIn.body.code}`);
  return signedIn.cookie.split(';')[0]!;
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

/** Registers the conformance table: every case of `cases.ts` against each target's reference app. */
export function describeConformance(targets: ConformanceTarget[]): void {
  describe.each(targets)('$label reference app', ({ adapter }) => {
    it.each([...cases, ...securityCases, ...pageSessionCases])('$name', async (testCase) => {
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
}
