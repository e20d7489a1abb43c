import { describe, expect, it } from 'vitest';
import { MemoryAuditSink } from './audit.js';
import { KeygateConfigError } from './errors.js';
import { MemoryKeyStore } from './memory-store.js';
import { resolveOptions } from './options.js';
import type { AuditSink } from './types.js';

function refusal(run: () => unknown): KeygateConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KeygateConfigError);
    return error as KeygateConfigError;
  }
  throw new Error('expected a KeygateConfigError');
}

describe('resolveOptions', () => {
  it('applies the documented defaults', () => {
    const config = resolveOptions();
    expect(config.extract).toEqual({
      sources: ['authorization', 'header', 'query'],
      headerName: 'x-api-key',
      queryParam: 'api_key',
    });
    expect(config.environments).toEqual(['live', 'test']);
    expect(config.tiers).toEqual({
      public: { perSecond: 100, burst: 1_000, daily: 1_000_000 },
      secret: { perSecond: 1_000, burst: 10_000, daily: 10_000_000 },
    });
    expect(config.store).toBeInstanceOf(MemoryKeyStore);
    expect(config.sinks).toHaveLength(1);
    expect(config.auditReader).toBe(config.sinks[0]);
    expect(config.limiter).not.toBeNull();
    expect(config.failureGuard).not.toBeNull();
    expect(config.cache).not.toBeNull();
    expect(config).toMatchObject({
      auditScopeChecks: true,
      session: null,
      publicScopes: ['track:events', 'read:config'],
      defaultOwnerId: 'org_default',
      adminScope: 'manage:keys',
    });
    expect(config.trustedOrigins).toEqual(new Set());
  });

  it('turns features off with false, and reads the first readable sink back', () => {
    const silent: AuditSink = { write: async () => {} };
    const readable = new MemoryAuditSink();
    const config = resolveOptions({
      limiter: false,
      authFailureLimit: false,
      cache: false,
      auditSinks: [silent, readable],
      headerName: 'X-Key',
    });
    expect([config.limiter, config.failureGuard, config.cache]).toEqual([null, null, null]);
    expect(config.auditReader).toBe(readable);
    expect(config.extract.headerName).toBe('x-key');
  });

  it('refuses an option it does not know, naming it (a misspelling is not ignored)', () => {
    const error = refusal(() => resolveOptions({ sesion: () => null, pepper: undefined } as never));
    expect(error.code).toBe('UNKNOWN_OPTION');
    expect(error.message).toBe('[keygate:UNKNOWN_OPTION] createKeygate does not take "sesion"');
  });

  it.each([
    [{ environments: [] }, /environments/],
    [{ environments: ['prod'] }, /environments/],
    [{ sources: [] }, /sources/],
    [{ sources: ['cookie'] }, /unknown key source "cookie"/],
    [{ tiers: { secret: { burst: 0 } } }, /tiers\.secret\.burst/],
    [{ tiers: { public: { daily: 1.5 } } }, /tiers\.public\.daily must be an integer/],
    [{ pepper: 'short' }, /pepper/],
    [{ prefixes: { secret: { live: 'x', test: 'y' } } }, /prefixes/],
    [{ trustedOrigins: ['dashboard.example.com'] }, /trustedOrigins/],
    [{ trustedOrigins: ['https://a.example.com/path'] }, /trustedOrigins/],
  ])('refuses %j as INVALID_OPTION', (options, message) => {
    const error = refusal(() => resolveOptions(options as never));
    expect(error.code).toBe('INVALID_OPTION');
    expect(error.message).toMatch(message);
  });

  it('normalises trusted origins', () => {
    expect(resolveOptions({ trustedOrigins: ['https://App.Example.com/'] }).trustedOrigins).toEqual(
      new Set(['https://app.example.com']),
    );
  });
});
