import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type DelegationBounds, delegationRefusal, type KeyReach } from './delegation.js';
import { KeyManagementError } from './errors.js';
import { createKeygate, type Keygate } from './keygate.js';
import { DEFAULT_TIERS } from './rate-limit.js';
import { checkRestrictions } from './restrictions.js';
import type { KeyRestrictions } from './types.js';

/** A secret live key with no limits of its own: the widest key there is. */
const WIDE: KeyReach = {
  scopes: ['read:data', 'write:llm', 'manage:keys'],
  resources: null,
  environment: 'live',
  type: 'secret',
  expiresAt: null,
  rateLimit: null,
  restrictions: null,
};

const CALLER: DelegationBounds = { ...WIDE };

function refusal(bounds: Partial<DelegationBounds>, key: Partial<KeyReach>): string | null {
  return delegationRefusal({ ...CALLER, ...bounds }, { ...WIDE, ...key }, DEFAULT_TIERS);
}

const IN_A_DAY = new Date(Date.now() + 86_400_000);
const IN_A_WEEK = new Date(Date.now() + 7 * 86_400_000);

describe('delegation: type and environment', () => {
  it('a public caller manages nothing', () => {
    expect(refusal({ type: 'public' }, { type: 'public' })).toBe(
      'type: a public key cannot manage keys',
    );
  });

  it('a secret caller manages secret and public keys', () => {
    expect(refusal({}, { type: 'secret' })).toBeNull();
    expect(refusal({}, { type: 'public' })).toBeNull();
  });

  it('keys of its own environment only', () => {
    expect(refusal({ environment: 'test' }, { environment: 'test' })).toBeNull();
    expect(refusal({ environment: 'test' }, { environment: 'live' })).toBe(
      'environment: cannot manage a live key, the caller is a test key',
    );
    expect(refusal({ environment: 'live' }, { environment: 'test' })).toBe(
      'environment: cannot manage a test key, the caller is a live key',
    );
  });
});

describe('delegation: scopes', () => {
  it('grants only scopes the caller holds', () => {
    expect(refusal({ scopes: ['read:data', 'manage:keys'] }, { scopes: ['read:data'] })).toBeNull();
    expect(refusal({ scopes: ['read:data'] }, { scopes: [] })).toBeNull();
    expect(refusal({ scopes: ['read:data', 'manage:keys'] }, { scopes: ['write:llm'] })).toBe(
      'scopes: cannot grant write:llm, which the caller does not hold',
    );
    expect(
      refusal({ scopes: ['read:data', 'manage:keys'] }, { scopes: ['read:data', 'read:*'] }),
    ).toBe('scopes: cannot grant read:*, which the caller does not hold');
  });
});

describe('delegation: resources', () => {
  it('a global caller grants anything, global access included', () => {
    expect(refusal({ resources: null }, { resources: null })).toBeNull();
    expect(refusal({ resources: null }, { resources: ['website:w_1', 'link:*'] })).toBeNull();
  });

  it('only a global caller grants global access', () => {
    expect(refusal({ resources: ['website:*'] }, { resources: null })).toBe(
      'resources: cannot grant access to every resource, which only a global caller has',
    );
  });

  it('a listed caller grants its own resources, or fewer', () => {
    const bounds = { resources: ['website:w_1', 'link:l_9'] };
    expect(refusal(bounds, { resources: ['website:w_1'] })).toBeNull();
    expect(refusal(bounds, { resources: [] })).toBeNull();
    expect(refusal(bounds, { resources: ['website:w_2'] })).toBe(
      'resources: cannot grant website:w_2, which the caller does not hold',
    );
    expect(refusal(bounds, { resources: ['website:*'] })).toBe(
      'resources: cannot grant website:*, which the caller does not hold',
    );
  });

  it('`website:*` covers every website, and nothing else', () => {
    const bounds = { resources: ['website:*'] };
    expect(refusal(bounds, { resources: ['website:w_1', 'website:*'] })).toBeNull();
    expect(refusal(bounds, { resources: ['link:l_1'] })).toBe(
      'resources: cannot grant link:l_1, which the caller does not hold',
    );
    expect(refusal(bounds, { resources: ['websites:w_1'] })).toBe(
      'resources: cannot grant websites:w_1, which the caller does not hold',
    );
  });

  it('a `*` elsewhere is an ordinary character, as the guard reads it', () => {
    expect(refusal({ resources: ['website:w_*'] }, { resources: ['website:w_1'] })).toBe(
      'resources: cannot grant website:w_1, which the caller does not hold',
    );
  });
});

describe('delegation: expiry', () => {
  it('a caller that never expires grants any expiry, or none', () => {
    expect(refusal({ expiresAt: null }, { expiresAt: null })).toBeNull();
    expect(refusal({ expiresAt: null }, { expiresAt: IN_A_WEEK })).toBeNull();
  });

  it('a key expires no later than its caller', () => {
    expect(refusal({ expiresAt: IN_A_WEEK }, { expiresAt: IN_A_DAY })).toBeNull();
    expect(refusal({ expiresAt: IN_A_WEEK }, { expiresAt: IN_A_WEEK })).toBeNull();
    expect(refusal({ expiresAt: IN_A_DAY }, { expiresAt: IN_A_WEEK })).toBe(
      `expiresAt: the key cannot outlive the caller, which expires at ${IN_A_DAY.toISOString()}`,
    );
    expect(refusal({ expiresAt: IN_A_DAY }, { expiresAt: null })).toBe(
      `expiresAt: the key must expire, as the caller does (${IN_A_DAY.toISOString()})`,
    );
  });
});

describe('delegation: rate limits (effective: the tier, overridden per key)', () => {
  it('a key without an override inherits its tier, which may exceed a limited caller', () => {
    expect(refusal({ rateLimit: null }, { rateLimit: null })).toBeNull();
    expect(refusal({ rateLimit: { perSecond: 1 } }, { rateLimit: null })).toBe(
      "rateLimit.perSecond: 1000 is more than the caller's 1",
    );
    expect(refusal({ rateLimit: { daily: 500 } }, { rateLimit: { perSecond: 1 } })).toBe(
      "rateLimit.daily: 10000000 is more than the caller's 500",
    );
  });

  it('every limit at or under the caller’s passes', () => {
    const bounds = { rateLimit: { perSecond: 1, burst: 5, daily: 100 } };
    expect(refusal(bounds, { rateLimit: { perSecond: 1, burst: 5, daily: 100 } })).toBeNull();
    expect(refusal(bounds, { rateLimit: { perSecond: 0.5, burst: 1, daily: 10 } })).toBeNull();
    expect(refusal(bounds, { rateLimit: { perSecond: 1, burst: 6, daily: 100 } })).toBe(
      "rateLimit.burst: 6 is more than the caller's 5",
    );
  });

  it('a public key is compared by the public tier', () => {
    // Public tier: 100/s, burst 1,000, 1,000,000 a day; under a secret caller's defaults.
    expect(refusal({}, { type: 'public', rateLimit: null })).toBeNull();
    expect(refusal({ rateLimit: { perSecond: 50 } }, { type: 'public', rateLimit: null })).toBe(
      "rateLimit.perSecond: 100 is more than the caller's 50",
    );
  });

  it('tiers come from the configuration', () => {
    const tiers = { ...DEFAULT_TIERS, secret: { perSecond: 5, burst: 5, daily: 5 } };
    expect(
      delegationRefusal(
        { ...CALLER, rateLimit: { perSecond: 5 } },
        { ...WIDE, rateLimit: null },
        tiers,
      ),
    ).toBeNull();
  });
});

describe('delegation: restrictions', () => {
  const limited = (restrictions: KeyRestrictions) => ({ restrictions });

  it('an unrestricted caller grants any restrictions, or none', () => {
    expect(refusal({ restrictions: null }, { restrictions: null })).toBeNull();
    expect(refusal({ restrictions: {} }, { restrictions: { ips: ['10.0.0.0/8'] } })).toBeNull();
  });

  it('a restricted caller cannot drop a restriction', () => {
    expect(refusal(limited({ ips: ['10.0.0.0/8'] }), { restrictions: null })).toBe(
      'restrictions.ips: the caller is limited to IPs 10.0.0.0/8, and so must the key be',
    );
    expect(refusal(limited({ referrers: ['https://a.com'] }), { restrictions: {} })).toBe(
      'restrictions.referrers: the caller is limited to origins https://a.com, and so must the key be',
    );
    expect(
      refusal(limited({ endpoints: ['GET /v1/**'] }), { restrictions: { endpoints: [] } }),
    ).toBe(
      'restrictions.endpoints: the caller is limited to endpoints GET /v1/**, and so must the key be',
    );
  });

  it('IPs: each range inside one of the caller’s', () => {
    const bounds = limited({ ips: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'] });
    const within = (ips: string[]) => refusal(bounds, { restrictions: { ips } });
    expect(within(['10.1.0.0/16', '10.1.2.3', '192.0.2.7', '192.0.2.7/32'])).toBeNull();
    expect(within(['2001:db8:1::/48', '2001:db8::1'])).toBeNull();
    expect(within(['10.0.0.0/7'])).toBe(
      "restrictions.ips: 10.0.0.0/7 is outside the caller's allowed IPs (10.0.0.0/8, 192.0.2.7, 2001:db8::/32)",
    );
    for (const outside of ['0.0.0.0/0', '11.0.0.1', '192.0.2.0/24', '::/0', '2001:db9::1']) {
      expect(within([outside]), outside).toMatch(/^restrictions\.ips: /);
    }
    // Adjacent ranges together are not one range of the caller's: each entry must fit one.
    expect(
      refusal(limited({ ips: ['10.0.0.0/24', '10.0.1.0/24'] }), {
        restrictions: { ips: ['10.0.0.0/23'] },
      }),
    ).toMatch(/^restrictions\.ips: 10\.0\.0\.0\/23 is outside/);
    // An IPv4 range never covers an IPv6 one, nor the reverse.
    expect(
      refusal(limited({ ips: ['0.0.0.0/0'] }), { restrictions: { ips: ['::ffff:10.0.0.1'] } }),
    ).toMatch(/^restrictions\.ips: /);
  });

  it('referrers: each origin pattern inside one of the caller’s', () => {
    const within = (bound: string, entry: string) =>
      refusal(limited({ referrers: [bound] }), { restrictions: { referrers: [entry] } }) === null;
    expect(within('https://*.example.com', 'https://app.example.com')).toBe(true);
    expect(within('https://*.example.com', 'https://*.example.com')).toBe(true);
    expect(within('https://*.example.com', 'https://*.eu.example.com')).toBe(true);
    expect(within('*.example.com', 'https://a.example.com')).toBe(true);
    expect(within('*.example.com', 'a.example.com')).toBe(true);
    expect(within('https://*.example.com', 'a.example.com')).toBe(false);
    expect(within('https://*.example.com', 'https://*')).toBe(false);
    expect(within('https://*.example.com', 'https://example.com.evil.com')).toBe(false);
    expect(within('https://app.example.com', 'https://app.example.com:8443')).toBe(false);
    expect(within('https://app.example.com:*', 'https://app.example.com:8443')).toBe(true);
    expect(within('https://app.example.com', 'https://APP.example.com/')).toBe(true);
  });

  it('endpoints: each pattern inside one of the caller’s, method and path', () => {
    const within = (bound: string, entry: string) =>
      refusal(limited({ endpoints: [bound] }), { restrictions: { endpoints: [entry] } }) === null;
    expect(within('GET /v1/websites/*/analytics', 'GET /v1/websites/*/analytics')).toBe(true);
    expect(within('GET /v1/websites/*/analytics', 'get /v1/websites/w_1/analytics')).toBe(true);
    expect(within('GET /v1/websites/*/analytics', '* /v1/websites/w_1/analytics')).toBe(false);
    expect(within('GET /v1/websites/*/analytics', 'GET /v1/**')).toBe(false);
    expect(within('GET /v1/websites/*/analytics', 'GET /v1/websites/**')).toBe(false);
    expect(within('* /v1/**', 'POST /v1/api-keys/*')).toBe(true);
    expect(within('* /v1/**', 'GET /v1')).toBe(true);
    expect(within('* /v1/**', 'GET /v1/**')).toBe(true);
    expect(within('* /v1/**', 'GET /v2/x')).toBe(false);
    expect(within('POST /v1/api-keys/*', 'POST /v1/api-keys/*/rotate')).toBe(false);
    expect(within('POST /v1/api-keys/*', 'POST /v1/api-keys/')).toBe(false);
    expect(within('GET /v1/**/analytics', 'GET /v1/websites/w_1/analytics')).toBe(true);
    expect(within('GET /v1/**/analytics', 'GET /v1/analytics')).toBe(false);
    expect(within('GET /v1/**/analytics', 'GET /v1/**')).toBe(false);
    expect(within('GET /v1/*/analytics', 'GET /v1/**/analytics')).toBe(false);
  });

  it('a pattern judged inside another never allows a request the other refuses', () => {
    const segment = fc.constantFrom('a', 'b', '*', '**', '');
    const pattern = fc
      .tuple(fc.constantFrom('GET', 'POST', '*'), fc.array(segment, { minLength: 1, maxLength: 4 }))
      .map(([method, segments]) => `${method} /${segments.join('/')}`);
    const request = fc
      .tuple(
        fc.constantFrom('GET', 'POST'),
        fc.array(fc.constantFrom('a', 'b', 'c', '*', ''), { maxLength: 5 }),
      )
      .map(([method, segments]) => ({ method, path: `/${segments.join('/')}` }));
    fc.assert(
      fc.property(pattern, pattern, fc.array(request, { maxLength: 20 }), (bound, entry, sent) => {
        const allowed = (endpoints: string[], method: string, path: string) =>
          checkRestrictions(
            { endpoints },
            { method, url: path, headers: new Headers(), ip: undefined },
            path,
          ) === null;
        const judged = refusal(limited({ endpoints: [bound] }), {
          restrictions: { endpoints: [entry] },
        });
        if (judged !== null) return;
        for (const { method, path } of sent) {
          if (allowed([entry], method, path)) expect(allowed([bound], method, path)).toBe(true);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('checks every list the caller has', () => {
    const bounds = limited({ ips: ['10.0.0.0/8'], endpoints: ['GET /v1/**'] });
    expect(
      refusal(bounds, { restrictions: { ips: ['10.1.0.0/16'], endpoints: ['GET /v1/x'] } }),
    ).toBeNull();
    expect(refusal(bounds, { restrictions: { ips: ['10.1.0.0/16'] } })).toMatch(
      /^restrictions\.endpoints: /,
    );
  });
});

describe('delegation: a session is bounded by its scopes and resources', () => {
  it('not by environment, type, expiry, limits or restrictions', () => {
    const session: DelegationBounds = { scopes: ['read:data'], resources: ['website:*'] };
    const key = (changes: Partial<KeyReach>) =>
      delegationRefusal(
        session,
        { ...WIDE, scopes: ['read:data'], resources: ['website:w_1'], ...changes },
        DEFAULT_TIERS,
      );
    expect(key({ environment: 'test', restrictions: null, expiresAt: null })).toBeNull();
    expect(key({ scopes: ['write:llm'] })).toBe(
      'scopes: cannot grant write:llm, which the caller does not hold',
    );
    expect(key({ resources: null })).toMatch(/^resources: /);
  });
});

describe('KeyService applies delegation to every change', () => {
  const open: Keygate[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((keygate) => keygate.close()));
  });

  async function setup() {
    const keygate = createKeygate({ authFailureLimit: false });
    open.push(keygate);
    const production = await keygate.keys.create({ name: 'production', scopes: ['read:data'] });
    const admin = await keygate.keys.create({
      name: 'scoped admin',
      environment: 'test',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
      restrictions: { ips: ['127.0.0.1'] },
      rateLimit: { perSecond: 1, burst: 50 },
      expiresAt: IN_A_WEEK,
    });
    const actor = {
      id: admin.key.id,
      bounds: {
        scopes: admin.key.scopes,
        resources: admin.key.resources,
        environment: admin.key.environment,
        type: admin.key.type,
        expiresAt: admin.key.expiresAt,
        rateLimit: admin.key.rateLimit,
        restrictions: admin.key.restrictions,
      },
    };
    const inBounds = {
      name: 'child',
      environment: 'test' as const,
      scopes: ['read:data'],
      resources: ['website:w_1'],
      restrictions: { ips: ['127.0.0.1'] },
      rateLimit: { perSecond: 1, burst: 10, daily: 1000 },
      expiresAt: IN_A_DAY,
    };
    return { keygate, production, admin, actor, inBounds };
  }

  async function refused(change: Promise<unknown>, message: string | RegExp): Promise<void> {
    const error = await change.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KeyManagementError);
    expect(error).toMatchObject({ code: 'FORBIDDEN' });
    if (typeof message === 'string') expect((error as Error).message).toBe(message);
    else expect((error as Error).message).toMatch(message);
  }

  it('create: within bounds, or 403 naming the bound', async () => {
    const { keygate, actor, inBounds } = await setup();
    await expect(keygate.keys.create(inBounds, actor)).resolves.toMatchObject({
      key: { environment: 'test' },
    });
    await refused(
      keygate.keys.create({ ...inBounds, environment: 'live' }, actor),
      'environment: cannot manage a live key, the caller is a test key',
    );
    await refused(
      keygate.keys.create({ ...inBounds, scopes: ['write:llm'] }, actor),
      'scopes: cannot grant write:llm, which the caller does not hold',
    );
    await refused(keygate.keys.create({ ...inBounds, resources: null }, actor), /^resources: /);
    await refused(keygate.keys.create({ ...inBounds, expiresAt: null }, actor), /^expiresAt: /);
    await refused(keygate.keys.create({ ...inBounds, rateLimit: null }, actor), /^rateLimit\./);
    await refused(
      keygate.keys.create({ ...inBounds, restrictions: null }, actor),
      /^restrictions\.ips: /,
    );
    expect(await keygate.keys.list()).toHaveLength(3);
  });

  it('self-update: a key cannot loosen its own restrictions, expiry or limits', async () => {
    const { keygate, admin, actor } = await setup();
    const id = admin.key.id;
    await refused(keygate.keys.update(id, { restrictions: null }, actor), /^restrictions\.ips: /);
    await refused(keygate.keys.update(id, { expiresAt: null }, actor), /^expiresAt: /);
    await refused(keygate.keys.update(id, { rateLimit: null }, actor), /^rateLimit\.perSecond: /);
    await refused(keygate.keys.update(id, { resources: null }, actor), /^resources: /);
    await refused(
      keygate.keys.update(id, { scopes: ['manage:keys', 'write:llm'] }, actor),
      /^scopes: /,
    );
    // Tightening, or changing what delegation does not bound, is allowed.
    await expect(
      keygate.keys.update(id, { name: 'renamed', expiresAt: IN_A_DAY }, actor),
    ).resolves.toMatchObject({ name: 'renamed', expiresAt: IN_A_DAY });
    expect(await keygate.keys.get(id)).toMatchObject({
      restrictions: { ips: ['127.0.0.1'] },
      rateLimit: { perSecond: 1, burst: 50 },
      resources: ['website:w_1'],
    });
  });

  it('update, rotate and revoke refuse a key beyond the caller, however small the change', async () => {
    const { keygate, production, actor } = await setup();
    const id = production.key.id;
    await refused(keygate.keys.update(id, { name: 'mine' }, actor), /^environment: /);
    await refused(keygate.keys.update(id, { scopes: [] }, actor), /^environment: /);
    await refused(keygate.keys.rotate(id, {}, actor), /^environment: /);
    await refused(keygate.keys.revoke(id, actor), /^environment: /);
    expect(await keygate.keys.get(id)).toMatchObject({
      name: 'production',
      scopes: ['read:data'],
      start: production.key.start,
      revokedAt: null,
    });
  });

  it('update, rotate and revoke a key within bounds', async () => {
    const { keygate, actor, inBounds } = await setup();
    const child = await keygate.keys.create(inBounds, actor);
    await expect(keygate.keys.update(child.key.id, { scopes: [] }, actor)).resolves.toMatchObject({
      scopes: [],
    });
    await expect(keygate.keys.rotate(child.key.id, {}, actor)).resolves.toMatchObject({
      key: { id: child.key.id },
    });
    await expect(keygate.keys.revoke(child.key.id, actor)).resolves.toMatchObject({
      revokedAt: expect.any(Date),
    });
  });

  it('callers without bounds (the CLI, the app’s own code) are not limited', async () => {
    const { keygate, production } = await setup();
    await expect(
      keygate.keys.create({ name: 'anything', scopes: ['write:llm'] }, { id: 'cli' }),
    ).resolves.toBeDefined();
    await expect(keygate.keys.rotate(production.key.id)).resolves.toBeDefined();
  });
});
