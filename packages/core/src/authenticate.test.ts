import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog } from './audit.js';
import { authenticate } from './authenticate.js';
import { FailedAttempts } from './failed-attempts.js';
import type { Keygate } from './keygate.js';
import { createDigestLookup, createKeyLookup } from './look-up.js';
import { MemoryKeyStore } from './memory-store.js';
import { type KeygateOptions, resolveOptions } from './options.js';
import { OutageLog } from './outage-log.js';
import type { Pipeline } from './pipeline.js';
import { MemoryRateLimiter, policiesFor } from './rate-limit.js';
import type { AuditEvent, AuditSink, Decision, KeygateRequest } from './types.js';

const logs: AuditLog[] = [];
afterEach(async () => {
  for (const log of logs.splice(0)) await log.close();
});

/** The pipeline as `createKeygate` wires it, with every backend a spy; `keygate` stands for the instance. */
function pipelineWith(options: KeygateOptions = {}) {
  const store = new MemoryKeyStore();
  const limiter = new MemoryRateLimiter();
  const events: AuditEvent[] = [];
  const sink: AuditSink = { write: async (batch) => void events.push(...batch) };
  const config = resolveOptions({
    store,
    limiter,
    authFailureLimit: false,
    auditSinks: [sink],
    ...options,
  });
  const audit = new AuditLog({ sinks: config.sinks, logger: { warn: vi.fn(), error: vi.fn() } });
  logs.push(audit);
  const outage = new OutageLog({ warn: vi.fn() });
  const keygate = {} as Keygate;
  const pipeline: Pipeline = {
    config,
    audit,
    outage,
    attempts: new FailedAttempts(null, audit, outage),
    lookUp: createKeyLookup({ ...config }),
    findByDigest: createDigestLookup({ ...config }),
    sessionPolicies: policiesFor(config.tiers.secret, null),
    keygate,
  };
  const issue = async (overrides: Partial<Parameters<typeof store.create>[0]> = {}) => {
    const generated = config.format.generate('secret', 'live');
    const record = await store.create({
      id: `key_${generated.start.slice(-6)}`,
      name: 'k',
      ownerId: 'org_1',
      type: 'secret',
      environment: 'live',
      digest: config.hasher.digest(generated.secret),
      digestVersion: config.hasher.version,
      prefix: generated.prefix,
      start: generated.start,
      scopes: ['read:data'],
      resources: null,
      restrictions: null,
      rateLimit: null,
      metadata: null,
      expiresAt: null,
      ...overrides,
    });
    return { secret: generated.secret, record };
  };
  const recorded = async () => {
    await audit.flush();
    return events.map((e) => [e.action, e.outcome, e.reason]);
  };
  return { pipeline, store, limiter, keygate, issue, recorded };
}

function request(headers: Record<string, string> = {}): KeygateRequest {
  return {
    method: 'GET',
    url: '/v1/query/websites',
    headers: new Headers(headers),
    ip: '203.0.113.10',
  };
}

function failure(decision: Decision) {
  if (decision.ok) throw new Error('expected a failure');
  return [decision.status, decision.body.code];
}

describe('authenticate, step by step', () => {
  it('a key that passes every step: the principal, the limiter’s headers, the context, the instance', async () => {
    const { pipeline, keygate, issue, recorded } = pipelineWith();
    const { secret, record } = await issue();
    const decision = await authenticate(
      pipeline,
      request({ 'x-api-key': secret, 'user-agent': 'k6' }),
    );
    if (!decision.ok) throw new Error(decision.body.code);
    expect(decision.principal).toMatchObject({ kind: 'key', id: record.id, scopes: ['read:data'] });
    expect(decision.headers['X-RateLimit-Remaining']).toBe('9999');
    expect(decision.context).toMatchObject({
      ip: '203.0.113.10',
      userAgent: 'k6',
      path: '/v1/query/websites',
    });
    expect(decision.keygate).toBe(keygate);
    expect(await recorded()).toEqual([['auth.succeeded', 'success', null]]);
  });

  it('extract: two different keys end there, before the key is parsed or looked up', async () => {
    const { pipeline, store, issue, recorded } = pipelineWith();
    const a = await issue();
    const b = await issue();
    const find = vi.spyOn(store, 'findByDigest');
    const decision = await authenticate(
      pipeline,
      request({ 'x-api-key': a.secret, authorization: `Bearer ${b.secret}` }),
    );
    expect(failure(decision)).toEqual([400, 'INVALID_REQUEST']);
    expect(find).not.toHaveBeenCalled();
    expect(await recorded()).toEqual([['auth.failed', 'failure', 'conflicting_keys']]);
  });

  it('parse: a string that is no key ends there, before the store is asked', async () => {
    const { pipeline, store, recorded } = pipelineWith();
    const find = vi.spyOn(store, 'findByDigest');
    expect(failure(await authenticate(pipeline, request({ 'x-api-key': 'sk_live_nope' })))).toEqual(
      [401, 'INVALID_API_KEY'],
    );
    expect(find).not.toHaveBeenCalled();
    expect(await recorded()).toEqual([['auth.failed', 'failure', 'malformed']]);
  });

  it('look up: a store that cannot answer ends there, 503, retry in a second', async () => {
    const { pipeline, store, limiter, issue, recorded } = pipelineWith();
    const { secret } = await issue();
    vi.spyOn(store, 'findByDigest').mockRejectedValue(new Error('connection refused'));
    const consume = vi.spyOn(limiter, 'consume');
    const decision = await authenticate(pipeline, request({ 'x-api-key': secret }));
    expect(failure(decision)).toEqual([503, 'SERVICE_UNAVAILABLE']);
    expect(decision.headers['Retry-After']).toBe('1');
    expect(consume).not.toHaveBeenCalled();
    expect(await recorded()).toEqual([['auth.failed', 'failure', 'store_unavailable']]);
  });

  it('check: a revoked or restricted key ends there, before the limiter is charged', async () => {
    const { pipeline, limiter, issue, recorded } = pipelineWith();
    const revoked = await issue({ id: 'key_revoked' });
    await pipeline.config.store.revoke(revoked.record.id, new Date());
    const restricted = await issue({ id: 'key_office', restrictions: { ips: ['10.0.0.0/8'] } });
    const consume = vi.spyOn(limiter, 'consume');
    expect(failure(await authenticate(pipeline, request({ 'x-api-key': revoked.secret })))).toEqual(
      [401, 'INVALID_API_KEY'],
    );
    expect(
      failure(await authenticate(pipeline, request({ 'x-api-key': restricted.secret }))),
    ).toEqual([403, 'FORBIDDEN']);
    expect(consume).not.toHaveBeenCalled();
    expect(await recorded()).toEqual([
      ['auth.failed', 'failure', 'revoked'],
      ['auth.failed', 'failure', 'restricted_ip'],
    ]);
  });

  it('limit: a spent limit ends there; the refused request is recorded, not counted as a use', async () => {
    const { pipeline, issue, recorded } = pipelineWith({
      tiers: { secret: { burst: 1, perSecond: 0.01 } },
    });
    const { secret } = await issue();
    expect((await authenticate(pipeline, request({ 'x-api-key': secret }))).ok).toBe(true);
    const refused = await authenticate(pipeline, request({ 'x-api-key': secret }));
    expect(failure(refused)).toEqual([429, 'RATE_LIMITED']);
    expect(refused.headers['Retry-After']).toBeDefined();
    expect(await recorded()).toEqual([
      ['auth.succeeded', 'success', null],
      ['auth.failed', 'failure', 'rate_limited'],
    ]);
  });

  it('no credential: the session resolver is asked instead', async () => {
    const session = vi.fn(() => ({ id: 'sess_1', ownerId: 'org_1', scopes: ['read:data'] }));
    const { pipeline } = pipelineWith({ session });
    const decision = await authenticate(pipeline, request({ cookie: 'sid=1' }));
    expect(decision.ok && decision.principal.kind).toBe('session');
    expect(session).toHaveBeenCalledTimes(1);
  });
});
