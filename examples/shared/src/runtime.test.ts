import { describe, expect, it } from 'vitest';
import { limitsFrom, openRuntime, shutdownDeadlineFrom, trustProxyFrom } from './runtime.js';

describe('TRUST_PROXY', () => {
  it('is off when unset, empty or 0', () => {
    for (const value of [undefined, '', '0', 'off', 'false']) {
      expect(trustProxyFrom({ TRUST_PROXY: value })).toBe(0);
    }
  });

  it('is a number of proxy hops', () => {
    expect(trustProxyFrom({ TRUST_PROXY: '1' })).toBe(1);
    expect(trustProxyFrom({ TRUST_PROXY: ' 2 ' })).toBe(2);
  });

  it('is a list of proxy addresses and CIDR ranges', () => {
    expect(trustProxyFrom({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1' })).toEqual([
      '10.0.0.0/8',
      '127.0.0.1',
      '::1',
    ]);
  });

  it('refuses anything else with a message, `true` included (it would believe any client)', () => {
    for (const value of ['true', 'yes', '10.0.0.0/99', '1.5', 'proxy.internal']) {
      expect(() => trustProxyFrom({ TRUST_PROXY: value }), value).toThrow(
        `TRUST_PROXY must be a number of proxy hops or a comma-separated list of proxy addresses or CIDR ranges (got ${value})`,
      );
    }
  });
});

describe('KEYGATE_REDIS_TIMEOUT_MS', () => {
  it('stops the start with a message when it is not a whole number of milliseconds', async () => {
    for (const value of ['2s', '0', '1.5']) {
      await expect(
        openRuntime({ REDIS_URL: 'redis://127.0.0.1:6379', KEYGATE_REDIS_TIMEOUT_MS: value }),
        value,
      ).rejects.toThrow(
        `KEYGATE_REDIS_TIMEOUT_MS must be a whole number of milliseconds from 1 to 60000 (got ${value})`,
      );
    }
  });
});

describe('KEYGATE_LIMITS', () => {
  it('is exact unless set to leased', () => {
    expect(limitsFrom({})).toBe('exact');
    expect(limitsFrom({ KEYGATE_LIMITS: 'exact' })).toBe('exact');
    expect(limitsFrom({ KEYGATE_LIMITS: ' Leased ' })).toBe('leased');
  });

  it('refuses anything else with a message', () => {
    expect(() => limitsFrom({ KEYGATE_LIMITS: 'local' })).toThrow(
      'KEYGATE_LIMITS must be exact or leased (got local)',
    );
  });
});

describe('KEYGATE_SHUTDOWN_MS', () => {
  it('KEYGATE_SHUTDOWN_MS: 10 s by default, whole milliseconds from 1 to 600000', () => {
    expect(shutdownDeadlineFrom({})).toBe(10_000);
    expect(shutdownDeadlineFrom({ KEYGATE_SHUTDOWN_MS: ' 3000 ' })).toBe(3_000);
    for (const value of ['0', '600001', '1.5', '-1', 'ten']) {
      expect(() => shutdownDeadlineFrom({ KEYGATE_SHUTDOWN_MS: value }), value).toThrow(
        `KEYGATE_SHUTDOWN_MS must be a whole number of milliseconds from 1 to 600000 (got ${value})`,
      );
    }
  });
});
