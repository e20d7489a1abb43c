import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, MemoryAuditSink } from './audit.js';
import { withLastUse } from './last-used.js';
import type { AuditContext, AuditReader, KeyDetails } from './types.js';

const logs: AuditLog[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const log of logs.splice(0)) await log.close();
});

function key(id: string): KeyDetails {
  const at = new Date('2026-01-01T00:00:00Z');
  return {
    id,
    name: id,
    ownerId: 'org_1',
    type: 'secret',
    environment: 'live',
    prefix: 'sk_live_',
    start: 'sk_live_abcdef',
    scopes: [],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
    createdAt: at,
    updatedAt: at,
    revokedAt: null,
    previousDigestExpiresAt: null,
    leak: null,
  };
}

const ctx = (): AuditContext => ({
  ip: '203.0.113.1',
  userAgent: 'curl/8',
  method: 'GET',
  path: '/',
  requestId: null,
});

function auditLog(sink: MemoryAuditSink): AuditLog {
  const log = new AuditLog({ sinks: [sink], logger: { warn: vi.fn(), error: vi.fn() } });
  logs.push(log);
  return log;
}

describe('withLastUse', () => {
  it('is the later of the reader’s last use and this instance’s uses not yet written', async () => {
    vi.useFakeTimers({ now: new Date('2026-03-10T12:00:10Z'), toFake: ['Date'] });
    const sink = new MemoryAuditSink();
    const audit = auditLog(sink);
    audit.recordUse('auth.succeeded', { id: 'key_a', start: null, ownerId: 'org_1' }, ctx());
    audit.recordUse('auth.succeeded', { id: 'key_b', start: null, ownerId: 'org_1' }, ctx());
    await audit.flush();
    vi.setSystemTime(new Date('2026-03-10T12:05:00Z'));
    audit.recordUse('auth.succeeded', { id: 'key_a', start: null, ownerId: 'org_1' }, ctx());

    const shown = await withLastUse([key('key_a'), key('key_b'), key('key_c')], sink, audit);
    expect(shown.map((k) => [k.id, k.lastUsedAt])).toEqual([
      ['key_a', new Date('2026-03-10T12:05:00Z')],
      ['key_b', new Date('2026-03-10T12:00:10Z')],
      ['key_c', null],
    ]);
  });

  it('asks the reader once for all the keys, and not at all for none', async () => {
    const lastUsed = vi.fn(async () => new Map([['key_a', new Date('2026-01-02T00:00:00Z')]]));
    const reader: AuditReader = { query: async () => [], lastUsed };
    const audit = auditLog(new MemoryAuditSink());
    const shown = await withLastUse([key('key_a'), key('key_b')], reader, audit);
    expect(lastUsed).toHaveBeenCalledTimes(1);
    expect(lastUsed).toHaveBeenCalledWith(['key_a', 'key_b']);
    expect(shown[0]!.lastUsedAt).toEqual(new Date('2026-01-02T00:00:00Z'));
    expect(await withLastUse([], reader, audit)).toEqual([]);
    expect(lastUsed).toHaveBeenCalledTimes(1);
  });

  it('without a reader that keeps usage, knows only this instance’s waiting uses', async () => {
    const audit = auditLog(new MemoryAuditSink());
    audit.recordUse('auth.succeeded', { id: 'key_a', start: null, ownerId: 'org_1' }, ctx());
    const [a, b] = await withLastUse([key('key_a'), key('key_b')], null, audit);
    expect(a!.lastUsedAt).toBeInstanceOf(Date);
    expect(b!.lastUsedAt).toBeNull();
  });
});
