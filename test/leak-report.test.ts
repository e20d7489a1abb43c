/**
 * SPEC §11: the leak endpoint (`POST /v1/api-keys/leaks`) on each reference app over Postgres:
 * reports in GitHub's secret-scanning partner format, signed with a P-256 key generated here and
 * configured as GitHub's, contain keys as their environment's policy says; an admin key may
 * report too. Clients are told apart by `X-Forwarded-For` (the apps trust one proxy).
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createKeygate, type Keygate } from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());

const github = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const GITHUB_KEY_ID = 'f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d';
const KNOWN_IP = '203.0.113.7';
const NEW_IP = '198.51.100.9';

/** GitHub's headers for `body`: the DER signature, base64, and the key's identifier. */
function signed(body: string, key = github.privateKey): Record<string, string> {
  return {
    'content-type': 'application/json',
    'Github-Public-Key-Identifier': GITHUB_KEY_ID,
    'Github-Public-Key-Signature': sign('sha256', Buffer.from(body), key).toString('base64'),
  };
}

describe.each(adapters)('$name leak endpoint', (adapter) => {
  const owner = `org_leaks_${adapter.name}`;
  let keygate: Keygate;
  let app: RunningApp;
  let admin: string;
  let live: { id: string; secret: string };
  let quarantined: { id: string; secret: string };
  let publicKey: { id: string; secret: string };
  let unknown: string;
  let report: string;

  beforeAll(async () => {
    keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      authFailureLimit: false,
      leaks: {
        containment: { live: 'revoke', test: 'quarantine' },
        githubKeys: [
          {
            id: GITHUB_KEY_ID,
            key: github.publicKey.export({ type: 'spki', format: 'pem' }) as string,
          },
        ],
      },
    });
    const issue = async (
      name: string,
      scopes: string[],
      environment: 'live' | 'test' = 'live',
      type: 'secret' | 'public' = 'secret',
    ) => {
      const issued = await keygate.keys.create({ name, ownerId: owner, scopes, environment, type });
      return { id: issued.key.id, secret: issued.secret };
    };
    admin = (await issue('admin', ['manage:keys', 'read:data', 'write:llm'])).secret;
    live = await issue('live', ['read:data', 'write:llm']);
    quarantined = await issue('staging', ['read:data', 'write:llm'], 'test');
    publicKey = await issue('browser', ['track:events'], 'live', 'public');
    // Checksum and prefix right, but no key of this store has it.
    unknown = createKeygate().leaks.format.generate('secret', 'live').secret;
    app = await startApp(adapter, keygate, { trustProxy: 1 });

    // The quarantined key's usual client, recorded as usage before the report.
    expect((await call('GET', '/v1/query/websites', quarantined.secret, KNOWN_IP)).status).toBe(
      200,
    );
    await keygate.audit.flush();

    report = JSON.stringify([
      {
        token: live.secret,
        type: 'keygate_secret_key',
        url: 'https://github.com/octo/app/blob/1234567/config.js',
        source: 'content',
      },
      { token: quarantined.secret, type: 'keygate_secret_key', url: '', source: 'commit' },
      {
        token: unknown,
        type: 'keygate_secret_key',
        url: 'https://github.com/o/r',
        source: 'content',
      },
      {
        token: publicKey.secret,
        type: 'keygate_public_key',
        url: 'https://npm.im/x',
        source: 'npm',
      },
    ]);
  });

  afterAll(async () => {
    await app?.close();
    await keygate?.close();
  });

  async function call(
    method: string,
    path: string,
    secret: string | null,
    ip = KNOWN_IP,
    body?: string,
    headers: Record<string, string> = {},
  ) {
    const response = await fetch(`${app.origin}${path}`, {
      method,
      headers: {
        'x-forwarded-for': ip,
        ...(secret ? { 'x-api-key': secret } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body,
    });
    const text = await response.text();
    return { status: response.status, text, json: text ? JSON.parse(text) : null };
  }

  const auditOf = async (keyId: string, action: string) =>
    database.sql`select * from keygate_audit_events where key_id = ${keyId} and action = ${action}`;

  it('a signed report: revokes the live key, quarantines the test key, notes the public key, ignores the unknown token', async () => {
    const answer = await call('POST', '/v1/api-keys/leaks', null, NEW_IP, report, signed(report));
    expect(answer.status).toBe(200);
    const hash = (token: string) => createHash('sha256').update(token).digest('hex');
    expect(answer.json).toEqual([
      { token_hash: hash(live.secret), token_type: 'keygate_secret_key', label: 'true_positive' },
      {
        token_hash: hash(quarantined.secret),
        token_type: 'keygate_secret_key',
        label: 'true_positive',
      },
      { token_hash: hash(unknown), token_type: 'keygate_secret_key', label: 'false_positive' },
      {
        token_hash: hash(publicKey.secret),
        token_type: 'keygate_public_key',
        label: 'true_positive',
      },
    ]);
    for (const secret of [live.secret, quarantined.secret, unknown, publicKey.secret]) {
      expect(answer.text).not.toContain(secret);
    }

    // Revoked: refused like any revoked key, and the record says why.
    expect((await call('GET', '/v1/query/websites', live.secret)).json.code).toBe(
      'INVALID_API_KEY',
    );
    const [liveRow] =
      await database.sql`select revoked_at, leak from keygate_api_keys where id = ${live.id}`;
    expect(liveRow!.revoked_at).toBeInstanceOf(Date);
    expect(liveRow!.leak).toMatchObject({
      containment: 'revoke',
      source: 'github:content',
      url: 'https://github.com/octo/app/blob/1234567/config.js',
      reports: 1,
      quarantine: null,
    });
    const [leaked] = await auditOf(live.id, 'key.leaked');
    expect(leaked).toMatchObject({
      actor: 'github',
      outcome: 'success',
      key_start: expect.any(String),
    });
    expect(leaked!.detail).toMatchObject({
      url: 'https://github.com/octo/app/blob/1234567/config.js',
      source: 'github:content',
      containment: 'revoke',
    });
    expect(await auditOf(live.id, 'key.revoked')).toHaveLength(1);

    // Quarantined: works from the address it was used from, for its read scope only.
    const [testRow] =
      await database.sql`select revoked_at, leak from keygate_api_keys where id = ${quarantined.id}`;
    expect(testRow!.revoked_at).toBeNull();
    expect(testRow!.leak).toMatchObject({
      containment: 'quarantine',
      quarantine: { ips: [KNOWN_IP], scopes: ['read:data'] },
    });
    const fromNewIp = await call('GET', '/v1/query/websites', quarantined.secret, NEW_IP);
    expect(fromNewIp).toMatchObject({ status: 403, json: { code: 'FORBIDDEN' } });
    expect(fromNewIp.json.error).toMatch(/quarantined/);
    expect((await call('GET', '/v1/query/websites', quarantined.secret, KNOWN_IP)).status).toBe(
      200,
    );
    const write = await call('POST', '/v1/llm/traces', quarantined.secret, KNOWN_IP, '{}');
    expect(write).toMatchObject({ status: 403, json: { code: 'INSUFFICIENT_SCOPE' } });

    // A public key is meant to be seen: noted, never revoked.
    const [publicRow] =
      await database.sql`select revoked_at, leak from keygate_api_keys where id = ${publicKey.id}`;
    expect(publicRow!.revoked_at).toBeNull();
    expect(publicRow!.leak).toMatchObject({ containment: 'notify', source: 'github:npm' });
    expect(await auditOf(publicKey.id, 'key.leaked')).toHaveLength(1);

    // No audit record holds a reported secret.
    const everything = JSON.stringify(await database.sql`select * from keygate_audit_events`);
    for (const secret of [live.secret, quarantined.secret, unknown]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('the same report again answers the same and changes nothing', async () => {
    const before =
      await database.sql`select count(*)::int as n from keygate_audit_events where action = 'key.leaked'`;
    const again = await call('POST', '/v1/api-keys/leaks', null, NEW_IP, report, signed(report));
    expect(again.status).toBe(200);
    expect(again.json.map((entry: { label: string }) => entry.label)).toEqual([
      'true_positive',
      'true_positive',
      'false_positive',
      'true_positive',
    ]);
    const after =
      await database.sql`select count(*)::int as n from keygate_audit_events where action = 'key.leaked'`;
    expect(after[0]!.n).toBe(before[0]!.n);
    const [row] =
      await database.sql`select leak from keygate_api_keys where id = ${quarantined.id}`;
    expect(row!.leak.reports).toBe(1);
  });

  it('refuses a tampered, unsigned or wrongly signed report with 401, before acting on it', async () => {
    const fresh = await keygate.keys.create({
      name: 'fresh',
      ownerId: owner,
      scopes: ['read:data'],
    });
    const body = JSON.stringify([
      { token: fresh.secret, type: 't', url: 'https://x.test', source: 'content' },
    ]);
    const tampered = body.replace('https://x.test', 'https://y.test');
    const refusals = [
      await call('POST', '/v1/api-keys/leaks', null, NEW_IP, tampered, signed(body)),
      await call('POST', '/v1/api-keys/leaks', null, NEW_IP, body, {
        ...signed(body),
        'Github-Public-Key-Identifier': 'not-a-configured-key',
      }),
      await call('POST', '/v1/api-keys/leaks', null, NEW_IP, body, {
        ...signed(body, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      }),
      await call('POST', '/v1/api-keys/leaks', null, NEW_IP, body, {
        ...signed(body),
        'Github-Public-Key-Signature': 'bm90IGEgc2lnbmF0dXJl',
      }),
    ];
    for (const refusal of refusals) {
      expect(refusal).toMatchObject({
        status: 401,
        json: { success: false, code: 'INVALID_SIGNATURE' },
      });
    }
    const unsigned = await call('POST', '/v1/api-keys/leaks', null, NEW_IP, body);
    expect(unsigned).toMatchObject({ status: 401, json: { code: 'AUTH_REQUIRED' } });
    expect((await call('GET', '/v1/query/websites', fresh.secret)).status).toBe(200);
    const [row] =
      await database.sql`select revoked_at, leak from keygate_api_keys where id = ${fresh.key.id}`;
    expect(row).toEqual({ revoked_at: null, leak: null });
  });

  it('answers 400 to a signed report that is not the partner format', async () => {
    for (const body of [
      'not json',
      '{}',
      '[]',
      JSON.stringify([{ type: 'x' }]),
      JSON.stringify([{ token: 'a', url: 'https://x.test/\u0000' }]),
    ]) {
      const answer = await call('POST', '/v1/api-keys/leaks', null, NEW_IP, body, signed(body));
      expect(answer).toMatchObject({ status: 400, json: { code: 'INVALID_REQUEST' } });
    }
    const huge = JSON.stringify([{ token: 'x'.repeat(2 * 1024 * 1024) }]);
    const tooLarge = await call('POST', '/v1/api-keys/leaks', null, NEW_IP, huge, signed(huge));
    expect(tooLarge.status).toBe(400);
  });

  it('takes a report from an admin key, of its own organisation only', async () => {
    const own = await keygate.keys.create({ name: 'own', ownerId: owner, scopes: ['read:data'] });
    const other = await keygate.keys.create({
      name: 'other',
      ownerId: `${owner}_b`,
      scopes: ['read:data'],
    });
    const body = JSON.stringify([
      { token: `found in ${own.secret} today`, url: 'https://tickets.example/4' },
      { token: other.secret },
    ]);
    const answer = await call('POST', '/v1/api-keys/leaks', admin, KNOWN_IP, body);
    expect(answer.status).toBe(200);
    expect(answer.json.success).toBe(true);
    expect(answer.json.data[0].keys).toEqual([
      expect.objectContaining({
        found: true,
        keyId: own.key.id,
        status: 'live',
        containment: 'revoke',
        repeated: false,
      }),
    ]);
    expect(answer.json.data[1].keys).toEqual([]);
    expect(answer.text).not.toContain(own.secret);
    expect((await call('GET', '/v1/query/websites', own.secret)).status).toBe(401);
    expect((await call('GET', '/v1/query/websites', other.secret)).status).toBe(200);
    const [event] = await auditOf(own.key.id, 'key.leaked');
    expect(event!.detail).toMatchObject({ source: 'admin', url: 'https://tickets.example/4' });

    const reader = await keygate.keys.create({
      name: 'reader',
      ownerId: owner,
      scopes: ['read:data'],
    });
    const refused = await call('POST', '/v1/api-keys/leaks', reader.secret, KNOWN_IP, body);
    expect(refused).toMatchObject({ status: 403, json: { code: 'INSUFFICIENT_SCOPE' } });
  });
});
