/**
 * Hostile text in management bodies, on each reference app over a real Postgres store: NUL,
 * control characters, unpaired surrogates and arbitrary Unicode in every field of every body
 * give a 4xx (the field named), never a 5xx, and nothing the database cannot hold reaches it.
 */
import { createKeygate, type Keygate } from '@keygate/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { adapters, type RunningApp, startApp } from './harness.js';

const NUM_RUNS = 100;
const IN_A_DAY = new Date(Date.now() + 86_400_000).toISOString();

type Path = ReadonlyArray<string | number>;
type Reply = { success: boolean; error?: string; code?: string };

/** A body of each route with every field set, and where each of its strings sits. */
const BODIES: Record<'create' | 'update' | 'rotate', { body: unknown; fields: Path[] }> = {
  create: {
    body: {
      name: 'k',
      type: 'secret',
      environment: 'live',
      scopes: ['read:data'],
      resources: ['website:w_1'],
      restrictions: {
        ips: ['127.0.0.1'],
        referrers: ['https://app.example.com'],
        endpoints: ['GET /v1/**'],
      },
      rateLimit: { perSecond: 5, burst: 10, daily: 100 },
      metadata: { team: { name: 'growth', tags: ['a'] } },
      expiresAt: IN_A_DAY,
    },
    fields: [
      ['name'],
      ['ownerId'],
      ['type'],
      ['environment'],
      ['scopes', 0],
      ['resources', 0],
      ['restrictions', 'ips', 0],
      ['restrictions', 'referrers', 0],
      ['restrictions', 'endpoints', 0],
      ['rateLimit', 'perSecond'],
      ['metadata', 'team', 'name'],
      ['metadata', 'team', 'tags', 0],
      ['expiresAt'],
    ],
  },
  update: {
    body: {
      name: 'k2',
      scopes: ['read:data'],
      resources: ['website:w_1'],
      restrictions: { endpoints: ['GET /v1/**'] },
      metadata: { note: 'x' },
      expiresAt: IN_A_DAY,
    },
    fields: [
      ['name'],
      ['scopes', 0],
      ['resources', 0],
      ['restrictions', 'endpoints', 0],
      ['metadata', 'note'],
      ['expiresAt'],
    ],
  },
  rotate: { body: { gracePeriodSeconds: 60 }, fields: [['gracePeriodSeconds']] },
};

/**
 * `body` with `value` at `path`, or as a field name beside it when `asKey` and it sits in an
 * object; also where the refusal must say the value is.
 */
function withValue(
  body: unknown,
  path: Path,
  value: string,
  asKey: boolean,
): { body: unknown; where: string } {
  const copy = structuredClone(body) as Record<string | number, unknown>;
  let node = copy;
  for (const step of path.slice(0, -1)) {
    node[step] ??= {};
    node = node[step] as Record<string | number, unknown>;
  }
  const last = path.at(-1)!;
  if (asKey && !Array.isArray(node)) {
    node[value] = node[last] ?? 'x';
    return { body: copy, where: path.length > 1 ? path.slice(0, -1).join('.') : 'body' };
  }
  node[last] = value;
  return { body: copy, where: path.join('.') };
}

/** A character no key field may hold: C0 and C1 controls (NUL among them), DEL, an unpaired surrogate. */
const forbidden = fc
  .oneof(
    fc.integer({ min: 0, max: 0x1f }),
    fc.integer({ min: 0x7f, max: 0x9f }),
    fc.integer({ min: 0xd800, max: 0xdfff }),
  )
  .map((code) => String.fromCharCode(code));

/** Arbitrary Unicode around one forbidden character. */
const hostile = fc
  .tuple(
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    forbidden,
    fc.string({ unit: 'grapheme', maxLength: 20 }),
  )
  .map((parts) => parts.join(''));

/** Anything at all: every code unit, lone surrogates included. */
const anything = fc.string({ unit: 'binary', maxLength: 40 });

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());

describe.each(adapters)('$name management router over Postgres: hostile text', (adapter) => {
  const ownerId = `org_props_${adapter.name}`;
  let keygate: Keygate;
  let app: RunningApp;
  let admin: string;
  let target: string;

  beforeAll(async () => {
    keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      authFailureLimit: false,
      logger: { warn: () => {}, error: (...args: unknown[]) => console.error(...args) },
    });
    admin = (
      await keygate.keys.create({
        name: 'admin',
        ownerId,
        scopes: ['manage:keys', 'read:data', 'write:llm', 'track:events'],
      })
    ).secret;
    target = (await keygate.keys.create({ name: 'target', ownerId, scopes: ['read:data'] })).key.id;
    app = await startApp(adapter, keygate);
  });
  afterAll(async () => {
    await app?.close();
    await keygate?.close();
  });

  const route = {
    create: () => ({ method: 'POST', path: '/v1/api-keys' }),
    update: () => ({ method: 'PATCH', path: `/v1/api-keys/${target}` }),
    rotate: () => ({ method: 'POST', path: `/v1/api-keys/${target}/rotate` }),
  };

  async function send(
    action: keyof typeof BODIES,
    body: string | Uint8Array,
  ): Promise<{ status: number; json: Reply }> {
    const { method, path } = route[action]();
    const response = await fetch(`${app.origin}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body,
    });
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    return { status: response.status, json: (await response.json()) as Reply };
  }

  const placement = fc
    .constantFrom(...(Object.keys(BODIES) as Array<keyof typeof BODIES>))
    .chain((action) =>
      fc.record({
        action: fc.constant(action),
        path: fc.constantFrom(...BODIES[action].fields),
        asKey: fc.boolean(),
      }),
    );

  it('a forbidden character anywhere in any body: 400 INVALID_REQUEST naming where', async () => {
    await fc.assert(
      fc.asyncProperty(placement, hostile, async ({ action, path, asKey }, value) => {
        const { body, where } = withValue(BODIES[action].body, path, value, asKey);
        const { status, json } = await send(action, JSON.stringify(body));
        expect({ status, code: json.code }).toEqual({ status: 400, code: 'INVALID_REQUEST' });
        expect(json.error?.startsWith(`${where}: `), json.error).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('arbitrary text in any field: an answer below 500', async () => {
    await fc.assert(
      fc.asyncProperty(placement, anything, async ({ action, path, asKey }, value) => {
        const { body } = withValue(BODIES[action].body, path, value, asKey);
        const { status } = await send(action, JSON.stringify(body));
        expect(status).toBeGreaterThanOrEqual(200);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('arbitrary bytes inside the JSON text: an answer below 500', async () => {
    const bytes = fc.uint8Array({ maxLength: 60 });
    const action = fc.constantFrom(...(Object.keys(BODIES) as Array<keyof typeof BODIES>));
    await fc.assert(
      fc.asyncProperty(action, bytes, async (which, raw) => {
        const body = Buffer.concat([
          Buffer.from('{"name":"'),
          Buffer.from(raw),
          Buffer.from('","scopes":["read:data"]}'),
        ]);
        const { status } = await send(which, body);
        expect(status).toBeGreaterThanOrEqual(200);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
