import { afterEach, describe, expect, it } from 'vitest';
import { scopeRequirement } from './guard.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import type {
  AuditEvent,
  AuditQuery,
  AuditReader,
  AuditSink,
  Decision,
  KeygateRequest,
} from './types.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function setup(options: KeygateOptions = {}) {
  const keygate = createKeygate({ authFailureLimit: false, ...options });
  open.push(keygate);
  return { keygate };
}

function request(init: { key: string; url: string }): KeygateRequest {
  return {
    method: 'GET',
    url: init.url,
    headers: new Headers({ authorization: `Bearer ${init.key}` }),
    ip: '203.0.113.10',
  };
}

function succeeded(decision: Decision) {
  if (!decision.ok) throw new Error(`expected a success, got ${decision.error.code}`);
  return decision;
}

/** A sink that wants every event, successes included (it keeps no usage counts). */
class EveryEventSink implements AuditSink, AuditReader {
  readonly events: AuditEvent[] = [];
  async write(events: readonly AuditEvent[]): Promise<void> {
    this.events.push(...events);
  }
  async query(query: AuditQuery): Promise<AuditEvent[]> {
    return this.events.slice(-(query.limit ?? 100)).reverse();
  }
}

async function auditOf(keygate: Keygate): Promise<AuditEvent[]> {
  await keygate.audit.flush();
  return (await keygate.auditReader!.query({ limit: 10_000 })).reverse();
}

describe('authorize', () => {
  it('decides scope and resource checks and audits them with the authentication’s request id', async () => {
    const { keygate } = setup({ auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    const req = request({ key: issued.secret, url: '/v1/websites/w_2/analytics' });
    const auth = succeeded(await keygate.authenticate(req));
    const requirement = scopeRequirement('read:data');
    expect(keygate.authorize(auth, requirement)).toBeNull();
    expect(keygate.authorize(auth, requirement, 'website:w_1')).toBeNull();
    const denied = keygate.authorize(auth, requirement, 'website:w_2');
    expect(denied?.error.code).toBe('ACCESS_DENIED');
    expect(denied?.headers['X-RateLimit-Limit']).toBe('10000');
    expect(keygate.authorize(auth, scopeRequirement('write:llm'))?.error.code).toBe(
      'INSUFFICIENT_SCOPE',
    );
    expect(keygate.authorize(auth, requirement, null)?.error.code).toBe('ACCESS_DENIED');

    const events = await auditOf(keygate);
    const checks = events.filter(
      (e) => e.action !== 'key.created' && e.action !== 'auth.succeeded',
    );
    expect(checks.map((e) => [e.action, e.outcome, e.reason])).toEqual([
      ['scope.checked', 'success', null],
      ['resource.checked', 'success', null],
      ['resource.checked', 'failure', 'resource_not_granted'],
      ['scope.checked', 'failure', 'insufficient_scope'],
      ['resource.checked', 'failure', 'resource_not_granted'],
    ]);
    expect(checks[2]!.detail).toEqual({
      required: ['read:data'],
      mode: 'all',
      granted: ['read:data'],
      resource: 'website:w_2',
    });
    const authEvent = events.find((e) => e.action === 'auth.succeeded')!;
    expect(authEvent.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(checks.map((e) => e.requestId))).toEqual(new Set([authEvent.requestId]));
  });

  it('auditScopeChecks: false decides the same and records no check', async () => {
    const { keygate } = setup({ auditScopeChecks: false, auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const auth = succeeded(
      await keygate.authenticate(request({ key: issued.secret, url: '/v1/query/websites' })),
    );
    expect(keygate.authorize(auth, scopeRequirement('read:data'))).toBeNull();
    expect(keygate.authorize(auth, scopeRequirement('write:llm'))?.error.code).toBe(
      'INSUFFICIENT_SCOPE',
    );
    const actions = (await auditOf(keygate)).map((e) => e.action);
    expect(actions).toEqual(['key.created', 'auth.succeeded']);
  });
});
