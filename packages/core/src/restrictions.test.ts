import { describe, expect, it } from 'vitest';
import { checkRestrictions, normaliseIp, validateRestrictions } from './restrictions.js';
import type { KeygateRequest, KeyRestrictions } from './types.js';

function request(
  options: { ip?: string; method?: string; headers?: Record<string, string> } = {},
): KeygateRequest {
  return {
    method: options.method ?? 'GET',
    url: '/v1/x',
    headers: new Headers(options.headers ?? {}),
    ip: options.ip,
  };
}

/** The reason a request is refused, or `null` when it passes. */
function refusal(
  restrictions: KeyRestrictions,
  req: KeygateRequest,
  path = '/v1/x',
): string | null {
  const error = checkRestrictions(restrictions, req, path);
  if (error) {
    expect(error.code).toBe('FORBIDDEN');
    expect(error.status).toBe(403);
  }
  return error?.reason ?? null;
}

describe('checkRestrictions: IP allow-list', () => {
  it('passes when the key has no restrictions', () => {
    expect(checkRestrictions(null, request(), '/')).toBeNull();
    expect(refusal({}, request())).toBeNull();
  });

  it('matches single IPv4 and IPv6 addresses', () => {
    const rules = { ips: ['198.51.100.7', '2001:db8::1'] };
    expect(refusal(rules, request({ ip: '198.51.100.7' }))).toBeNull();
    expect(refusal(rules, request({ ip: '2001:db8::1' }))).toBeNull();
    expect(refusal(rules, request({ ip: '2001:0db8:0000::0001' }))).toBeNull();
    expect(refusal(rules, request({ ip: '198.51.100.8' }))).toBe('restricted_ip');
    expect(refusal(rules, request({ ip: '2001:db8::2' }))).toBe('restricted_ip');
  });

  it('matches an IPv4 /24', () => {
    const rules = { ips: ['10.1.2.0/24'] };
    expect(refusal(rules, request({ ip: '10.1.2.0' }))).toBeNull();
    expect(refusal(rules, request({ ip: '10.1.2.255' }))).toBeNull();
    expect(refusal(rules, request({ ip: '10.1.3.0' }))).toBe('restricted_ip');
    expect(refusal(rules, request({ ip: '10.1.1.255' }))).toBe('restricted_ip');
  });

  it('matches an IPv6 /64', () => {
    const rules = { ips: ['2001:db8:abcd:12::/64'] };
    expect(refusal(rules, request({ ip: '2001:db8:abcd:12::1' }))).toBeNull();
    expect(refusal(rules, request({ ip: '2001:db8:abcd:12:ffff:ffff:ffff:ffff' }))).toBeNull();
    expect(refusal(rules, request({ ip: '2001:db8:abcd:13::1' }))).toBe('restricted_ip');
  });

  it('sees an IPv4-mapped IPv6 client as its IPv4 address', () => {
    expect(normaliseIp('::ffff:192.0.2.10')).toBe('192.0.2.10');
    expect(normaliseIp('::FFFF:192.0.2.10')).toBe('192.0.2.10');
    expect(normaliseIp('2001:db8::1')).toBe('2001:db8::1');
    expect(normaliseIp('192.0.2.10')).toBe('192.0.2.10');
    expect(refusal({ ips: ['192.0.2.0/24'] }, request({ ip: '::ffff:192.0.2.10' }))).toBeNull();
    expect(refusal({ ips: ['192.0.2.10'] }, request({ ip: '::ffff:192.0.2.10' }))).toBeNull();
    expect(refusal({ ips: ['192.0.2.0/24'] }, request({ ip: '::ffff:192.0.3.10' }))).toBe(
      'restricted_ip',
    );
  });

  it('refuses a request whose IP is missing or not an IP', () => {
    const rules = { ips: ['0.0.0.0/0', '::/0'] };
    expect(refusal(rules, request({ ip: '203.0.113.1' }))).toBeNull();
    expect(refusal(rules, request({}))).toBe('restricted_ip');
    expect(refusal(rules, request({ ip: '' }))).toBe('restricted_ip');
    expect(refusal(rules, request({ ip: 'localhost' }))).toBe('restricted_ip');
  });

  it('says why in the message, not which addresses are allowed', () => {
    const error = checkRestrictions({ ips: ['10.9.8.7'] }, request({ ip: '1.2.3.4' }), '/');
    expect(error?.message).toBe('This API key is not allowed from this IP address');
  });
});

describe('checkRestrictions: referrers', () => {
  it('matches a wildcard subdomain, not the apex or a look-alike', () => {
    const rules = { referrers: ['https://*.example.com'] };
    const from = (origin: string) => refusal(rules, request({ headers: { origin } }));
    expect(from('https://app.example.com')).toBeNull();
    expect(from('https://APP.Example.com')).toBeNull();
    expect(from('https://example.com')).toBe('restricted_referrer');
    expect(from('https://app.example.com.evil.io')).toBe('restricted_referrer');
    expect(from('https://appexample.com')).toBe('restricted_referrer');
    expect(from('http://app.example.com')).toBe('restricted_referrer');
  });

  it('a scheme-less pattern accepts http and https', () => {
    const rules = { referrers: ['dash.example.org'] };
    const from = (origin: string) => refusal(rules, request({ headers: { origin } }));
    expect(from('https://dash.example.org')).toBeNull();
    expect(from('http://dash.example.org')).toBeNull();
    expect(from('ftp://dash.example.org')).toBe('restricted_referrer');
    expect(from('https://dash.example.org:8443')).toBe('restricted_referrer');
  });

  it('honours explicit ports and a trailing slash in the pattern', () => {
    const rules = { referrers: ['http://localhost:3000/', 'https://example.net:*'] };
    const from = (origin: string) => refusal(rules, request({ headers: { origin } }));
    expect(from('http://localhost:3000')).toBeNull();
    expect(from('http://localhost:3001')).toBe('restricted_referrer');
    expect(from('https://example.net:8443')).toBeNull();
  });

  it('uses Origin first, then the Referer’s origin', () => {
    const rules = { referrers: ['https://app.example.com'] };
    expect(
      refusal(rules, request({ headers: { referer: 'https://app.example.com/page?q=1' } })),
    ).toBeNull();
    expect(
      refusal(
        rules,
        request({
          headers: { origin: 'https://evil.io', referer: 'https://app.example.com/page' },
        }),
      ),
    ).toBe('restricted_referrer');
    expect(
      refusal(
        rules,
        request({ headers: { origin: 'null', referer: 'https://app.example.com/page' } }),
      ),
    ).toBeNull();
  });

  it('refuses a request with neither header, or an unreadable Referer', () => {
    const rules = { referrers: ['https://app.example.com'] };
    expect(refusal(rules, request())).toBe('restricted_referrer');
    expect(refusal(rules, request({ headers: { referer: 'not a url' } }))).toBe(
      'restricted_referrer',
    );
    expect(refusal(rules, request({ headers: { origin: 'null' } }))).toBe('restricted_referrer');
  });
});

describe('checkRestrictions: endpoints', () => {
  const rules = { endpoints: ['GET /v1/websites/*/analytics', 'post /v1/events'] };
  const call = (method: string, path: string) => refusal(rules, request({ method }), path);

  it('matches a method and a path with a one-segment wildcard', () => {
    expect(call('GET', '/v1/websites/w_1/analytics')).toBeNull();
    expect(call('get', '/v1/websites/w_1/analytics/')).toBeNull();
    expect(call('POST', '/v1/events')).toBeNull();
    expect(call('GET', '/v1/websites/w_1/x/analytics')).toBe('restricted_endpoint');
    expect(call('GET', '/v1/websites//analytics')).toBe('restricted_endpoint');
    expect(call('GET', '/v1/websites/w_1/analytics/export')).toBe('restricted_endpoint');
    expect(call('GET', '/v1/links/l_1/analytics')).toBe('restricted_endpoint');
  });

  it('refuses a matching path with another method', () => {
    expect(call('DELETE', '/v1/websites/w_1/analytics')).toBe('restricted_endpoint');
    expect(call('GET', '/v1/events')).toBe('restricted_endpoint');
  });

  it('`* /v1/**` allows every method below /v1', () => {
    const all = { endpoints: ['* /v1/**'] };
    expect(refusal(all, request({ method: 'DELETE' }), '/v1/api-keys/key_1')).toBeNull();
    expect(refusal(all, request({ method: 'PATCH' }), '/v1')).toBeNull();
    expect(refusal(all, request({ method: 'GET' }), '/v1/a/b/c')).toBeNull();
    expect(refusal(all, request({ method: 'GET' }), '/v2/a')).toBe('restricted_endpoint');
    expect(refusal(all, request({ method: 'GET' }), '/v10')).toBe('restricted_endpoint');
  });

  it('treats regex characters in the pattern literally', () => {
    const dotted = { endpoints: ['GET /v1/file.json'] };
    expect(refusal(dotted, request(), '/v1/file.json')).toBeNull();
    expect(refusal(dotted, request(), '/v1/fileXjson')).toBe('restricted_endpoint');
  });
});

describe('checkRestrictions: combined', () => {
  it('every kind of restriction must pass', () => {
    const rules: KeyRestrictions = {
      ips: ['10.0.0.0/8'],
      referrers: ['https://app.example.com'],
      endpoints: ['GET /v1/**'],
    };
    const ok = request({ ip: '10.1.1.1', headers: { origin: 'https://app.example.com' } });
    expect(refusal(rules, ok, '/v1/x')).toBeNull();
    expect(refusal(rules, ok, '/v2/x')).toBe('restricted_endpoint');
    expect(
      refusal(rules, request({ ip: '11.1.1.1', headers: { origin: 'https://app.example.com' } })),
    ).toBe('restricted_ip');
    expect(refusal(rules, request({ ip: '10.1.1.1' }))).toBe('restricted_referrer');
  });
});

describe('validateRestrictions', () => {
  it('accepts well-formed restrictions', () => {
    expect(() =>
      validateRestrictions({
        ips: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1', '::1'],
        referrers: ['https://*.example.com', 'example.org', 'http://localhost:3000'],
        endpoints: ['GET /v1/x', '* /v1/**', 'PATCH /v1/api-keys/*'],
      }),
    ).not.toThrow();
  });

  it.each([
    ['a hostname as IP', { ips: ['example.com'] }],
    ['an empty IP', { ips: [''] }],
    ['a v4 prefix over 32', { ips: ['10.0.0.0/33'] }],
    ['a v6 prefix over 128', { ips: ['2001:db8::/129'] }],
    ['a negative prefix', { ips: ['10.0.0.0/-1'] }],
    ['an empty prefix', { ips: ['10.0.0.0/'] }],
    ['two prefixes', { ips: ['10.0.0.0/8/16'] }],
    ['an out-of-range octet', { ips: ['10.0.0.256'] }],
    ['a referrer with a path', { referrers: ['https://example.com/path'] }],
    ['a referrer with a query', { referrers: ['https://example.com?x=1'] }],
    ['a referrer with spaces', { referrers: ['exa mple.com'] }],
    ['a referrer with another scheme', { referrers: ['ftp://example.com'] }],
    ['an endpoint without a method', { endpoints: ['/v1/x'] }],
    ['an endpoint with a relative path', { endpoints: ['GET v1/x'] }],
    ['an endpoint with a bad method', { endpoints: ['G3T /v1/x'] }],
    ['an empty endpoint', { endpoints: [''] }],
  ])('throws on %s', (_, restrictions) => {
    expect(() => validateRestrictions(restrictions)).toThrow();
  });
});
