import { describe, expect, it } from 'vitest';
import { clientIpOf, proxyTrust } from './client-ip.js';
import { KeygateConfigError } from './errors.js';

describe('proxyTrust', () => {
  it('trusting no proxy, is no resolver: the client is the connection', () => {
    expect(proxyTrust()).toBeNull();
    expect(proxyTrust(0)).toBeNull();
  });

  it('with n hops, believes the n rightmost forwarded addresses', () => {
    const resolve = proxyTrust(2)!;
    expect(resolve('127.0.0.1', '10.0.0.1, 203.0.113.5, 192.0.2.9')).toBe('203.0.113.5');
    expect(resolve('127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(resolve(undefined, '203.0.113.5')).toBeUndefined();
  });

  it('with proxy addresses, is the rightmost address that is not one', () => {
    const resolve = proxyTrust(['127.0.0.1', '10.0.0.0/8'])!;
    expect(resolve('127.0.0.1', '203.0.113.5, 10.1.1.1')).toBe('203.0.113.5');
    // A client that is no trusted proxy is not believed about whom it forwards for.
    expect(resolve('198.51.100.1', '10.0.0.1')).toBe('198.51.100.1');
  });

  it('refuses a setting that cannot work, when created', () => {
    for (const bad of [-1, 1.5, ['not-an-ip']] as const) {
      expect(() => proxyTrust(bad as never)).toThrow(KeygateConfigError);
    }
  });
});

describe('clientIpOf', () => {
  it('reads the forwarded header only when some proxy is trusted', () => {
    let read = 0;
    const forwarded = () => {
      read++;
      return '203.0.113.5';
    };
    expect(clientIpOf<string>(0, (address) => address, forwarded)('198.51.100.1')).toBe(
      '198.51.100.1',
    );
    expect(read).toBe(0);
    expect(clientIpOf<string>(1, (address) => address, forwarded)('127.0.0.1')).toBe('203.0.113.5');
    expect(read).toBe(1);
  });
});
