import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateConfigError } from './errors.js';
import {
  ALL_SOURCES,
  type ExtractOptions,
  extractKey,
  type KeySource,
  pathOf,
  validateSources,
} from './extract.js';
import type { KeygateRequest } from './types.js';

const KEY = 'sk_live_0123456789abcdefghijABCDEFGHIJklmnop';
const OTHER = 'sk_live_ZYXWVUTSRQponmlkjihgfedcba9876543210';

/** Headers as a plain map, so values the Fetch `Headers` class would refuse (NUL, non-ASCII) reach the core. */
function request(headers: Record<string, string> = {}, url = '/v1/x'): KeygateRequest {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    method: 'GET',
    url,
    headers: { get: (name) => lower.get(name.toLowerCase()) ?? null },
    ip: '203.0.113.7',
  };
}

const defaults: ExtractOptions = {
  sources: ALL_SOURCES,
  headerName: 'x-api-key',
  queryParam: 'api_key',
};

function extract(req: KeygateRequest, options: Partial<ExtractOptions> = {}) {
  return extractKey(req, { ...defaults, ...options });
}

function expectInvalidRequest(
  req: KeygateRequest,
  reason: string,
  options?: Partial<ExtractOptions>,
) {
  const result = extract(req, options);
  expect(result.kind).toBe('error');
  if (result.kind !== 'error') return;
  expect(result.error.code).toBe('INVALID_REQUEST');
  expect(result.error.status).toBe(400);
  expect(result.error.reason).toBe(reason);
}

describe('extractKey: Authorization header', () => {
  it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])('accepts the %s scheme', (scheme) => {
    expect(extract(request({ authorization: `${scheme} ${KEY}` }))).toEqual({
      kind: 'key',
      key: KEY,
      source: 'authorization',
    });
  });

  it('trims whitespace around the header and the token', () => {
    expect(extract(request({ authorization: `  Bearer \t  ${KEY}  \t` }))).toMatchObject({
      kind: 'key',
      key: KEY,
    });
  });

  it('ignores other schemes', () => {
    expect(extract(request({ authorization: 'Basic dXNlcjpwYXNz' }))).toEqual({ kind: 'none' });
    expect(extract(request({ authorization: `Token ${KEY}` }))).toEqual({ kind: 'none' });
    expect(extract(request({ authorization: `Bearer${KEY}` }))).toEqual({ kind: 'none' });
    expect(
      extract(request({ authorization: 'Basic dXNlcjpwYXNz', 'x-api-key': KEY })),
    ).toMatchObject({ kind: 'key', key: KEY, source: 'header' });
  });

  it('treats an empty Bearer token as no key', () => {
    expect(extract(request({ authorization: 'Bearer' }))).toEqual({ kind: 'none' });
    expect(extract(request({ authorization: 'Bearer    ' }))).toEqual({ kind: 'none' });
  });

  it('an empty credential in one place does not conflict with a key in another', () => {
    expect(extract(request({ authorization: 'Bearer ', 'x-api-key': KEY }))).toMatchObject({
      kind: 'key',
      key: KEY,
      source: 'header',
    });
    expect(extract(request({ authorization: `Bearer ${KEY}`, 'x-api-key': '' }))).toMatchObject({
      kind: 'key',
      key: KEY,
      source: 'authorization',
    });
    expect(extract(request({ 'x-api-key': ' ' }, `/x?api_key=${KEY}`))).toMatchObject({
      kind: 'key',
      source: 'query',
    });
  });
});

describe('extractKey: x-api-key header and query parameter', () => {
  it('reads the x-api-key header, trimmed', () => {
    expect(extract(request({ 'X-Api-Key': `  ${KEY} ` }))).toEqual({
      kind: 'key',
      key: KEY,
      source: 'header',
    });
  });

  it('reads a configured header name', () => {
    const req = request({ 'x-service-token': KEY });
    expect(extract(req)).toEqual({ kind: 'none' });
    expect(extract(req, { headerName: 'x-service-token' })).toMatchObject({ key: KEY });
  });

  it('reads the api_key query parameter, from a path or an absolute URL', () => {
    expect(extract(request({}, `/v1/x?a=1&api_key=${KEY}&b=2`))).toEqual({
      kind: 'key',
      key: KEY,
      source: 'query',
    });
    expect(extract(request({}, `https://api.example.com/v1/x?api_key=${KEY}#top`))).toMatchObject({
      key: KEY,
      source: 'query',
    });
    expect(extract(request({}, `/v1/x?api_key=%20${KEY}%20`))).toMatchObject({ key: KEY });
  });

  it('does not read a parameter that only appears in the fragment', () => {
    expect(extract(request({}, `/v1/x#api_key=${KEY}`))).toEqual({ kind: 'none' });
    expect(extract(request({}, `/v1/x?a=1#api_key=${KEY}`))).toEqual({ kind: 'none' });
  });

  it('reads a configured query parameter', () => {
    const req = request({}, `/v1/x?token=${KEY}`);
    expect(extract(req)).toEqual({ kind: 'none' });
    expect(extract(req, { queryParam: 'token' })).toMatchObject({ key: KEY, source: 'query' });
  });

  it('finds nothing when nothing is sent', () => {
    expect(extract(request())).toEqual({ kind: 'none' });
    expect(extract(request({}, '/v1/x?other=1'))).toEqual({ kind: 'none' });
  });
});

describe('extractKey: several sources', () => {
  it('reports the first enabled source in order', () => {
    const all = request({ authorization: `Bearer ${KEY}`, 'x-api-key': KEY }, `/x?api_key=${KEY}`);
    expect(extract(all)).toMatchObject({ source: 'authorization' });
    expect(extract(all, { sources: ['query', 'header'] })).toMatchObject({ source: 'query' });
    expect(extract(request({ 'x-api-key': KEY }, `/x?api_key=${KEY}`))).toMatchObject({
      source: 'header',
    });
  });

  it('ignores disabled sources entirely', () => {
    const req = request(
      { authorization: `Bearer ${KEY}`, 'x-api-key': OTHER },
      `/x?api_key=${OTHER}`,
    );
    expect(extract(req, { sources: ['authorization'] })).toEqual({
      kind: 'key',
      key: KEY,
      source: 'authorization',
    });
    expect(
      extract(request({}, `/x?api_key=${KEY}`), { sources: ['authorization', 'header'] }),
    ).toEqual({ kind: 'none' });
    expect(extract(request({ authorization: `Bearer ${KEY}` }), { sources: ['header'] })).toEqual({
      kind: 'none',
    });
  });

  it('refuses different keys in two sources', () => {
    expectInvalidRequest(
      request({ authorization: `Bearer ${KEY}`, 'x-api-key': OTHER }),
      'conflicting_keys',
    );
    expectInvalidRequest(request({ 'x-api-key': KEY }, `/x?api_key=${OTHER}`), 'conflicting_keys');
    expectInvalidRequest(
      request({ authorization: `Bearer ${KEY}` }, `/x?api_key=${OTHER}`),
      'conflicting_keys',
    );
  });

  it('accepts the same key in every source', () => {
    expect(
      extract(
        request({ authorization: `Bearer ${KEY}`, 'x-api-key': ` ${KEY}` }, `/x?api_key=${KEY}`),
      ),
    ).toEqual({ kind: 'key', key: KEY, source: 'authorization' });
  });
});

describe('extractKey: unusable credentials', () => {
  it('refuses an array or repeated api_key query parameter', () => {
    expectInvalidRequest(request({}, `/x?api_key[]=${KEY}`), 'query_array');
    expectInvalidRequest(request({}, `/x?api_key%5B%5D=${KEY}`), 'query_array');
    expectInvalidRequest(request({}, `/x?api_key[0]=${KEY}&api_key[1]=${OTHER}`), 'query_array');
    expectInvalidRequest(request({}, `/x?api_key=${KEY}&api_key=${KEY}`), 'query_array');
    expectInvalidRequest(request({}, `/x?api_key=${KEY}&api_key=${OTHER}`), 'query_array');
  });

  it('does not look at the query at all when that source is disabled', () => {
    expect(extract(request({}, `/x?api_key[]=${KEY}`), { sources: ['header'] })).toEqual({
      kind: 'none',
    });
  });

  it.each([
    ['a NUL byte', `${KEY.slice(0, 10)}\u0000${KEY.slice(10)}`],
    ['a non-ASCII letter', `${KEY.slice(0, 10)}é${KEY.slice(10)}`],
    ['an emoji', `${KEY}🔑`],
    ['an inner space', `${KEY.slice(0, 10)} ${KEY.slice(10)}`],
    ['a control character', `${KEY}\u0007`],
    ['DEL', `${KEY}\u007f`],
  ])('refuses a key with %s', (_, value) => {
    expectInvalidRequest(request({ 'x-api-key': value }), 'encoding');
    expectInvalidRequest(request({ authorization: `Bearer ${value}` }), 'encoding');
    expectInvalidRequest(request({}, `/x?api_key=${encodeURIComponent(value)}`), 'encoding');
  });

  it('refuses an oversized credential, accepts up to 1,024 characters', () => {
    expectInvalidRequest(request({ 'x-api-key': 'a'.repeat(1_025) }), 'encoding');
    expectInvalidRequest(request({ authorization: `Bearer ${'a'.repeat(100_000)}` }), 'encoding');
    expect(extract(request({ 'x-api-key': 'a'.repeat(1_024) }))).toMatchObject({ kind: 'key' });
  });

  it('never repeats the credential in its error message', () => {
    const secret = `${KEY}\u0000`;
    const result = extract(request({ 'x-api-key': secret, authorization: `Bearer ${OTHER}` }));
    expect(result.kind).toBe('error');
    if (result.kind === 'error') {
      expect(result.error.message).not.toContain(KEY);
      expect(JSON.stringify(result.error.toJSON())).not.toContain(KEY);
    }
    const conflict = extract(request({ 'x-api-key': KEY, authorization: `Bearer ${OTHER}` }));
    if (conflict.kind === 'error') {
      expect(conflict.error.message).not.toContain(KEY);
      expect(conflict.error.message).not.toContain(OTHER);
    }
    expect(conflict.kind).toBe('error');
  });

  it('never throws, whatever the headers and URL hold', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ maxLength: 60 }),
    );
    const header = fc.option(
      fc.oneof(
        text,
        text.map((t) => `Bearer ${t}`),
        fc.constant(`Bearer ${KEY}`),
      ),
      { nil: null },
    );
    const url = fc.oneof(
      text,
      text.map((t) => `/v1/x?${t}`),
      text.map((t) => `/v1/x?api_key=${t}`),
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
    );
    const sources = fc.subarray([...ALL_SOURCES] as KeySource[], { minLength: 1 });
    fc.assert(
      fc.property(header, header, url, sources, (authorization, apiKey, href, enabled) => {
        const headers = {
          get: (name: string) =>
            name === 'authorization' ? authorization : name === 'x-api-key' ? apiKey : null,
        };
        const result = extractKey(
          { method: 'GET', url: href, headers, ip: undefined },
          { ...defaults, sources: enabled },
        );
        if (result.kind === 'key') {
          expect(result.key).toMatch(/^[\x21-\x7e]{1,1024}$/);
        } else if (result.kind === 'error') {
          expect(result.error.status).toBe(400);
        } else {
          expect(result).toEqual({ kind: 'none' });
        }
        expect(typeof pathOf(href)).toBe('string');
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('validateSources', () => {
  it('accepts any non-empty subset of the known sources', () => {
    expect(validateSources(['query', 'authorization'])).toEqual(['query', 'authorization']);
  });

  it('refuses no source or an unknown one', () => {
    expect(() => validateSources([])).toThrow(KeygateConfigError);
    expect(() => validateSources(['cookie'])).toThrow(/unknown key source "cookie"/);
  });
});

describe('pathOf', () => {
  it.each([
    ['/v1/x', '/v1/x'],
    ['/v1/x?api_key=sk_live_abc', '/v1/x'],
    ['/v1/x#frag?api_key=1', '/v1/x'],
    ['/v1/x?a=1#frag', '/v1/x'],
    [
      'https://api.example.com/v1/websites/w_1/analytics?api_key=sk_live_abc#h',
      '/v1/websites/w_1/analytics',
    ],
    ['https://api.example.com', '/'],
    ['http://[::1]:3000/health?x', '/health'],
    ['not a url', '/'],
    ['', '/'],
  ])('pathOf(%j) = %j', (url, path) => {
    expect(pathOf(url)).toBe(path);
  });

  it('reads a serialized URL’s path as the URL parser does, without parsing it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('http://api.example.com', 'https://[::1]:8443', 'http://u:p@h.test'),
        fc.string({ unit: 'binary', maxLength: 60 }),
        (origin, rest) => {
          const href = new URL(rest, `${origin}/base/`).href;
          expect(pathOf(href)).toBe(new URL(href).pathname);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
