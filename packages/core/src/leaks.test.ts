import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryAuditSink } from './audit.js';
import { KeygateConfigError } from './errors.js';
import { createKeygate } from './keygate.js';
import { type LeakOutcome, resolveLeakPolicy, verifyGitHubSignature } from './leaks.js';

const cli = { id: 'cli' };

/** The outcomes of the first report, for a test that sends one. */
async function firstOutcome(outcomes: Promise<LeakOutcome[][]>) {
  return (await outcomes)[0]!;
}

function setup(options: Parameters<typeof createKeygate>[0] = {}) {
  const sink = new MemoryAuditSink();
  const keygate = createKeygate({ auditSinks: [sink], authFailureLimit: false, ...options });
  const use = (secret: string, ip: string, url = '/v1/data') =>
    keygate.authenticate({ method: 'GET', url, headers: new Headers({ 'x-api-key': secret }), ip });
  return { keygate, sink, use };
}

describe('LeakService.identify', () => {
  it('tells live, revoked and unknown secrets; an old secret in its grace period is live, one rotated out is unknown', async () => {
    const { keygate } = setup();
    const live = await keygate.keys.create({ name: 'a', scopes: [] });
    const revoked = await keygate.keys.create({ name: 'b', scopes: [] });
    await keygate.keys.revoke(revoked.key.id);
    const rotated = await keygate.keys.create({ name: 'c', scopes: [] });
    await keygate.keys.rotate(rotated.key.id);
    const graceful = await keygate.keys.create({ name: 'd', scopes: [] });
    await keygate.keys.rotate(graceful.key.id, { gracePeriodSeconds: 60 });
    const unknown = keygate.leaks.format.generate('secret', 'live').secret;
    expect((await keygate.leaks.identify(live.secret))?.status).toBe('live');
    expect((await keygate.leaks.identify(revoked.secret))?.status).toBe('revoked');
    expect((await keygate.leaks.identify(rotated.secret))?.status).toBe('unknown');
    expect((await keygate.leaks.identify(graceful.secret))?.status).toBe('live');
    expect(await keygate.leaks.identify(unknown)).toMatchObject({
      status: 'unknown',
      record: null,
    });
    expect(await keygate.leaks.identify('sk_live_nope')).toBeNull();
  });
});

describe('LeakService.report', () => {
  it('quarantine: keeps the IPs of recent use and the read scopes; other places add to the record, not the containment', async () => {
    const { keygate, sink, use } = setup({ leaks: { containment: { live: 'quarantine' } } });
    const key = await keygate.keys.create({ name: 'k', scopes: ['read:data', 'write:data'] });
    expect((await use(key.secret, '192.0.2.10')).ok).toBe(true);
    expect((await use(key.secret, '::ffff:192.0.2.11')).ok).toBe(true);

    const [outcome] = await firstOutcome(
      keygate.leaks.report([{ token: key.secret, url: 'https://a', source: 'scan' }], cli),
    );
    expect(outcome).toMatchObject({
      found: true,
      containment: 'quarantine',
      repeated: false,
      status: 'live',
    });
    const stored = await keygate.keys.get(key.key.id);
    expect(stored.leak?.quarantine?.scopes).toEqual(['read:data']);
    expect(stored.leak?.quarantine?.ips.sort()).toEqual(['192.0.2.10', '::ffff:192.0.2.11']);

    const known = await use(key.secret, '192.0.2.11');
    expect(known.ok && known.principal.scopes).toEqual(['read:data']);
    expect(await use(key.secret, '203.0.113.1')).toMatchObject({
      ok: false,
      status: 403,
      body: { code: 'FORBIDDEN' },
    });

    const [again] = await firstOutcome(
      keygate.leaks.report([{ token: key.secret, url: 'https://a', source: 'scan' }], cli),
    );
    expect(again).toMatchObject({ repeated: true, containment: 'quarantine' });
    const [elsewhere] = await firstOutcome(
      keygate.leaks.report([{ token: key.secret, url: 'https://b', source: 'scan' }], cli),
    );
    expect(elsewhere).toMatchObject({ repeated: false, containment: 'quarantine' });
    expect((await keygate.keys.get(key.key.id)).leak).toMatchObject({
      reports: 2,
      url: 'https://b',
    });
    await keygate.audit.flush();
    expect(
      (await sink.query({ keyId: key.key.id })).filter((e) => e.action === 'key.leaked'),
    ).toHaveLength(2);
  });

  it('notify: records the leak and leaves the key working; a URL holding a key is recorded cut', async () => {
    const { keygate, sink, use } = setup({ leaks: { containment: { test: 'notify' } } });
    const key = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data'],
      environment: 'test',
    });
    const url = `https://logs.example/?api_key=${key.secret}`;
    await keygate.leaks.report([{ token: key.secret, url, source: 'admin' }], cli);
    expect((await use(key.secret, '192.0.2.1')).ok).toBe(true);
    await keygate.audit.flush();
    const [event] = (await sink.query({ keyId: key.key.id })).filter(
      (e) => e.action === 'key.leaked',
    );
    expect(event!.detail).toMatchObject({
      containment: 'notify',
      url: `https://logs.example/?api_key=${key.key.start}`,
    });
    expect(JSON.stringify(await sink.query({}))).not.toContain(key.secret);
  });

  it('an admin of another owner finds nothing', async () => {
    const { keygate, use } = setup();
    const key = await keygate.keys.create({ name: 'k', scopes: [], ownerId: 'org_a' });
    const [outcome] = await firstOutcome(
      keygate.leaks.report([{ token: key.secret, source: 'admin' }], {
        id: 'x',
        ownerId: 'org_b',
      }),
    );
    expect(outcome!.found).toBe(false);
    expect((await use(key.secret, '192.0.2.1')).ok).toBe(true);
  });
});

describe('leak options', () => {
  it('refuses a containment, a look-back or a GitHub key that cannot work', () => {
    for (const leaks of [
      { containment: { live: 'delete' } },
      { containment: { staging: 'revoke' } },
      { quarantineDays: 0 },
      { quarantineDays: 1.5 },
      { githubKeys: [{ id: 'k', key: 'not a key' }] },
      {
        githubKeys: [
          {
            id: 'k',
            key: generateKeyPairSync('ed25519').publicKey.export({
              type: 'spki',
              format: 'pem',
            }) as string,
          },
        ],
      },
    ]) {
      expect(() => resolveLeakPolicy(leaks as never)).toThrow(KeygateConfigError);
    }
  });

  it('verifies GitHub signatures over the raw bytes only', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const policy = resolveLeakPolicy({
      githubKeys: [
        { id: 'k1', key: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string },
      ],
    });
    const body = Buffer.from('[{"token":"x"}]');
    const signature = sign('sha256', body, pair.privateKey).toString('base64');
    expect(verifyGitHubSignature(policy.githubKeys, body, 'k1', signature)).toBe(true);
    expect(
      verifyGitHubSignature(policy.githubKeys, Buffer.from('[{"token":"y"}]'), 'k1', signature),
    ).toBe(false);
    expect(verifyGitHubSignature(policy.githubKeys, body, 'k2', signature)).toBe(false);
    expect(verifyGitHubSignature(policy.githubKeys, body, 'k1', null)).toBe(false);
    expect(verifyGitHubSignature(policy.githubKeys, body, 'k1', '%%%')).toBe(false);
  });
});
