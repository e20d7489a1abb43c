import {
  type AuditEvent,
  createKeygate,
  JsonLinesAuditSink,
  type Keygate,
  MemoryAuditSink,
} from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, startApp } from './conformance/harness.js';
import { HttpClient } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

interface IssuedOverHttp {
  id: string;
  start: string;
  secret: string;
}

describe('the audit trail never holds a secret', () => {
  let database: TestDatabase;
  let keygate: Keygate;
  let jsonLines = '';
  const memory = new MemoryAuditSink(100_000);
  /** Every full secret used in the run. */
  const secrets: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    keygate = createKeygate({
      store: database.store,
      auditSinks: [
        database.auditSink,
        new JsonLinesAuditSink((line) => {
          jsonLines += line;
        }),
        memory,
      ],
      authFailureLimit: false,
    });
  });

  afterAll(async () => {
    await keygate?.close();
    await database?.close();
  });

  it('in Postgres, JSON lines or memory, whatever the route, adapter or key source', async () => {
    const admin = await keygate.keys.create({
      name: 'admin',
      scopes: ['manage:keys', 'read:data'],
    });
    const stranger = await createKeygate().keys.create({ name: 'stranger', scopes: ['read:data'] });
    secrets.push(admin.secret, stranger.secret);
    const asAdmin = `api_key=${admin.secret}`;

    for (const adapter of adapters) {
      const app = await startApp(adapter, keygate);
      const client = new HttpClient(app.origin, 10);
      const status = async (path: string, headers: Record<string, string> = {}) =>
        (await client.send({ path, headers })).status;
      const manage = async (method: string, path: string, body?: unknown) => {
        const answer = await client.send({
          method,
          path: `/v1/api-keys${path}${path.includes('?') ? '&' : '?'}${asAdmin}`,
          headers: { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(answer.status, `${adapter.name} ${method} ${path}: ${answer.body}`).toBeLessThan(
          300,
        );
        return (JSON.parse(answer.body) as { data: IssuedOverHttp }).data;
      };

      // Issued, rotated and revoked over HTTP, the admin key always in the query string.
      const issued = await manage('POST', '', {
        name: `reader ${adapter.name}`,
        scopes: ['read:data'],
      });
      secrets.push(issued.secret);
      expect(await status(`/v1/query/websites?api_key=${issued.secret}`)).toBe(200);
      expect(await status(`/v1/query/websites?from=1&api_key=${issued.secret}&to=2`)).toBe(200);
      expect(await status(`/v1/websites/w_1/analytics?api_key=${issued.secret}#top`)).toBe(200);
      expect(await status('/v1/query/websites', { 'x-api-key': issued.secret })).toBe(200);
      expect(await status('/v1/query/websites', { authorization: `Bearer ${issued.secret}` })).toBe(
        200,
      );

      const rotated = await manage('POST', `/${issued.id}/rotate`, { gracePeriodSeconds: 60 });
      secrets.push(rotated.secret);
      expect(await status(`/v1/query/websites?api_key=${issued.secret}`)).toBe(200);
      expect(await status(`/v1/query/websites?api_key=${rotated.secret}`)).toBe(200);
      await manage('PATCH', `/${issued.id}`, { name: `renamed ${adapter.name}` });
      await manage('GET', `/${issued.id}/events?limit=5`);
      await manage('DELETE', `/${issued.id}`);
      expect(await status(`/v1/query/websites?api_key=${rotated.secret}`)).toBe(401);
      expect(await status(`/v1/query/websites?api_key=${issued.secret}`)).toBe(401);

      // Refused credentials in the query string: unknown, malformed, conflicting, repeated.
      expect(await status(`/v1/query/websites?api_key=${stranger.secret}`)).toBe(401);
      expect(await status(`/v1/query/websites?api_key=${stranger.secret.slice(0, -1)}x`)).toBe(401);
      expect(
        await status(`/v1/query/websites?api_key=${stranger.secret}`, {
          'x-api-key': admin.secret,
        }),
      ).toBe(400);
      expect(
        await status(`/v1/query/websites?api_key=${admin.secret}&api_key=${stranger.secret}`),
      ).toBe(400);

      client.close();
      await app.close();
    }

    // Changes made through the KeyService: a rotation without grace, a revocation.
    const direct = await keygate.keys.create({ name: 'direct', scopes: ['read:data'] });
    const directRotated = await keygate.keys.rotate(direct.key.id, { gracePeriodSeconds: 0 });
    await keygate.keys.revoke(direct.key.id);
    secrets.push(direct.secret, directRotated.secret);
    await keygate.close();

    const tableRows = await database.sql<Array<{ row: string }>>`
      select row_to_json(t)::text as row from keygate_audit_events t`;
    const usageRows = await database.sql<Array<{ row: string; count: number }>>`
      select row_to_json(u)::text as row, authenticated + scope_checks + resource_checks as count
      from keygate_usage_counts u`;
    const keyRows = await database.sql<Array<{ row: string }>>`
      select row_to_json(k)::text as row from keygate_api_keys k`;
    const inMemory = await memory.query({ limit: 100_000 });
    const outputs = {
      'Postgres audit table': tableRows.map((r) => r.row).join('\n'),
      'Postgres usage table': usageRows.map((r) => r.row).join('\n'),
      'JSON lines': jsonLines,
      'memory sink': JSON.stringify(inMemory),
      'keys table': keyRows.map((r) => r.row).join('\n'),
    };

    // The run did record what it is searched for: query-string uses, rotations, revocations.
    // Successes are usage counts in Postgres and memory, and one line each in JSON lines.
    const counted = usageRows.reduce((sum, r) => sum + r.count, 0);
    expect(tableRows.length).toBeGreaterThan(30);
    expect(counted).toBeGreaterThan(50);
    expect(inMemory).toHaveLength(tableRows.length);
    expect(jsonLines.trim().split('\n')).toHaveLength(tableRows.length + counted);
    const actions = new Set(inMemory.map((e) => e.action));
    for (const action of ['key.created', 'key.updated', 'key.rotated', 'key.revoked']) {
      expect(actions).toContain(action);
    }
    expect(inMemory.some((e) => e.reason === 'revoked')).toBe(true);
    expect(inMemory.some((e) => e.reason === 'unknown')).toBe(true);

    expect(new Set(secrets).size).toBe(2 + 2 * adapters.length + 2);
    for (const [name, output] of Object.entries(outputs)) {
      for (const secret of secrets) {
        const body = secret.slice(secret.indexOf('_', 3) + 1);
        expect(output.includes(secret), `${name} holds a secret`).toBe(false);
        expect(output.includes(body), `${name} holds a secret's body`).toBe(false);
      }
    }
    for (const [name, output] of Object.entries(outputs)) {
      expect(output.includes('api_key'), `${name} mentions api_key`).toBe(false);
    }
    const paths = (events: readonly Pick<AuditEvent, 'path'>[]) =>
      events.map((e) => e.path).filter((p): p is string => p !== null);
    const tablePaths = [...tableRows, ...usageRows].map(
      (r) => (JSON.parse(r.row) as { path: string | null }).path,
    );
    for (const path of [...paths(inMemory), ...tablePaths]) {
      if (path !== null) expect(path).toMatch(/^\/[^?#]*$/);
    }
  });
});
