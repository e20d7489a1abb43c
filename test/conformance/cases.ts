import {
  type CreateKeyInput,
  createKeyFormat,
  type KeygateOptions,
  type Session,
} from '@keygate/core';
import { expect } from 'vitest';

/** What a case's requests can refer to once its keys and sessions exist. */
export interface CaseContext {
  /** The full secret of one of the case's keys. */
  key(name: string): string;
  /** The `Cookie` header value of one of the case's sessions. */
  cookie(name: string): string;
}

export interface CaseRequest {
  method?: string;
  /** Path and query string, sent as written. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * Header bytes `fetch` refuses to send (NUL, raw UTF-8), written to a plain socket as given.
   * The server may answer these itself, before any middleware runs.
   */
  rawHeaders?: Array<[string, string | Buffer]>;
}

export interface Step {
  request: (ctx: CaseContext) => CaseRequest;
  status: number;
  /** The exact JSON body (asymmetric matchers allowed); omitted when the server answers itself. */
  body?: unknown;
  /** Header values (lower-case names) the response must carry; asymmetric matchers allowed. */
  headers?: Record<string, unknown>;
  /** Headers the response must not carry. */
  absentHeaders?: string[];
  /**
   * Whether the route's handler ran. Counted through the data layer the GET routes read, so it is
   * given for GET routes; POST routes are judged by their body.
   */
  handlerRan?: boolean;
}

export type KeySetup = CreateKeyInput & {
  /** Revoked through the API, or expired by moving `expiresAt` into the past in the store. */
  state?: 'revoked' | 'expired';
};

export interface ConformanceCase {
  name: string;
  /** Options beyond the suite's defaults (in-memory store and limiter, no brute-force guard). */
  options?: KeygateOptions;
  trustProxy?: boolean;
  host?: '127.0.0.1' | '::1';
  keys?: Record<string, KeySetup>;
  /** Browser sessions; when given, the app resolves `keygate_session` cookies. */
  sessions?: Record<string, Omit<Session, 'id'>>;
  steps: Step[];
}

const failure = (code: string, error: string) => ({ success: false, error, code });

const AUTH_REQUIRED = failure('AUTH_REQUIRED', 'Authentication required');
const INVALID_API_KEY = failure('INVALID_API_KEY', 'Invalid API key');
const BAD_ENCODING = failure(
  'INVALID_REQUEST',
  'The API key contains characters an API key cannot have',
);
const QUERY_ARRAY = failure(
  'INVALID_REQUEST',
  'The api_key query parameter must be given once, as a plain value',
);

const BEARER_CHALLENGE = 'Bearer realm="api"';
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="api", error="invalid_token"';
const RATE_LIMIT_HEADERS = [
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'ratelimit-policy',
  'ratelimit',
];

const integer = expect.stringMatching(/^\d+$/);
/** `X-RateLimit-Reset`: whole Unix seconds, not before now. */
const epochSecondsFromNow = expect.toSatisfy(
  (value: string) => /^\d+$/.test(value) && Number(value) >= Math.floor(Date.now() / 1000),
  'Unix epoch seconds, not before now',
);
/** `Retry-After`: whole seconds, at least 1. */
const retryAfter = expect.toSatisfy(
  (value: string) => /^\d+$/.test(value) && Number(value) >= 1,
  'whole seconds, at least 1',
);
const authenticatedHeaders = {
  'x-ratelimit-limit': integer,
  'x-ratelimit-remaining': integer,
  'x-ratelimit-reset': epochSecondsFromNow,
  'ratelimit-policy': expect.stringMatching(/^"burst";q=\d+;w=\d+, "daily";q=\d+;w=86400$/),
  ratelimit: expect.stringMatching(/^"burst";r=\d+;t=\d+, "daily";r=\d+;t=\d+$/),
};

const analytics = (websiteId: string) => ({
  success: true,
  data: expect.objectContaining({ websiteId }),
});
const linkAnalytics = (linkId: string) => ({
  success: true,
  data: expect.objectContaining({ linkId }),
});

const format = createKeyFormat();
/** Well-formed, valid checksum, never issued. */
const UNKNOWN_KEY = format.generate('secret', 'live').secret;

/** The same key with its last checksum character changed: rejected in memory. */
export function breakChecksum(key: string): string {
  return key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
}

const READER: KeySetup = { name: 'reader', scopes: ['read:data'] };
const get = (path: string, headers: Record<string, string> = {}): CaseRequest => ({
  path,
  headers,
});
const W1 = '/v1/websites/w_1/analytics';

/** One success and one failure per route guard, source and restriction; each runs on every adapter. */
export const cases: ConformanceCase[] = [
  // Where the key comes from (SPEC §3)
  {
    name: 'no key: 401 AUTH_REQUIRED with a Bearer challenge',
    steps: [
      {
        request: () => get(W1),
        status: 401,
        body: AUTH_REQUIRED,
        headers: { 'www-authenticate': BEARER_CHALLENGE },
        absentHeaders: RATE_LIMIT_HEADERS,
        handlerRan: false,
      },
    ],
  },
  {
    name: '`Authorization: Bearer` with no token counts as no key',
    keys: { reader: READER },
    steps: [
      {
        request: () => get(W1, { authorization: 'Bearer' }),
        status: 401,
        body: AUTH_REQUIRED,
        headers: { 'www-authenticate': BEARER_CHALLENGE },
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}?api_key=`, { 'x-api-key': key('reader') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'another scheme (`Authorization: Basic`) is not read as a key',
    keys: { reader: READER },
    steps: [
      {
        request: () => get(W1, { authorization: 'Basic dXNlcjpwYXNz' }),
        status: 401,
        body: AUTH_REQUIRED,
        headers: { 'www-authenticate': BEARER_CHALLENGE },
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { authorization: 'Basic dXNlcjpwYXNz', 'x-api-key': key('reader') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'the Bearer scheme is case-insensitive',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { authorization: `bearer ${key('reader')}` }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) => get(W1, { authorization: `BEARER ${key('reader')}` }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'whitespace around the key is trimmed',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { authorization: `Bearer \t   ${key('reader')}` }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) => ({ path: W1, rawHeaders: [['x-api-key', `   ${key('reader')}  `]] }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) => get(`${W1}?api_key=%20${key('reader')}%20`),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'a key only in the query string',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(`${W1}?api_key=${key('reader')}`),
        status: 200,
        body: analytics('w_1'),
        headers: authenticatedHeaders,
        handlerRan: true,
      },
    ],
  },
  {
    name: 'the same key in a header and the query string',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) =>
          get(`${W1}?api_key=${key('reader')}`, { authorization: `Bearer ${key('reader')}` }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'different keys in two sources: 400 INVALID_REQUEST',
    keys: { reader: READER, other: READER },
    steps: [
      {
        request: ({ key }) =>
          get(`${W1}?api_key=${key('other')}`, { authorization: `Bearer ${key('reader')}` }),
        status: 400,
        body: failure('INVALID_REQUEST', 'Different API keys were sent in more than one place'),
        absentHeaders: ['www-authenticate', ...RATE_LIMIT_HEADERS],
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('other'), authorization: `Bearer ${key('reader')}` }),
        status: 400,
        body: failure('INVALID_REQUEST', 'Different API keys were sent in more than one place'),
        handlerRan: false,
      },
    ],
  },
  {
    name: 'a repeated Authorization or x-api-key header: 400 INVALID_REQUEST',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => ({
          path: W1,
          rawHeaders: [
            ['authorization', `Bearer ${key('reader')}`],
            ['authorization', `Bearer ${breakChecksum(key('reader'))}`],
          ],
        }),
        status: 400,
        body: BAD_ENCODING,
        handlerRan: false,
      },
      {
        request: ({ key }) => ({
          path: W1,
          rawHeaders: [
            ['x-api-key', key('reader')],
            ['x-api-key', key('reader')],
          ],
        }),
        status: 400,
        body: BAD_ENCODING,
        handlerRan: false,
      },
    ],
  },
  {
    name: '`api_key` as an array or repeated: 400 INVALID_REQUEST',
    keys: { reader: READER },
    steps: [
      {
        request: () => get(`${W1}?api_key[]=x`),
        status: 400,
        body: QUERY_ARRAY,
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}?api_key%5B0%5D=${key('reader')}`),
        status: 400,
        body: QUERY_ARRAY,
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}?api_key=${key('reader')}&api_key=${key('reader')}`),
        status: 400,
        body: QUERY_ARRAY,
        handlerRan: false,
      },
    ],
  },

  {
    name: 'paths are case-sensitive; a trailing slash reaches the same guarded route',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get('/V1/websites/w_1/analytics', { 'x-api-key': key('reader') }),
        status: 404,
        body: failure('NOT_FOUND', 'Not found'),
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}/`, { 'x-api-key': key('reader') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: () => get(`${W1}/`),
        status: 401,
        body: AUTH_REQUIRED,
        handlerRan: false,
      },
    ],
  },

  // Which keys are refused (SPEC §2, §3)
  {
    name: 'a wrong checksum: 401 INVALID_API_KEY with error="invalid_token"',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { authorization: `Bearer ${breakChecksum(key('reader'))}` }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        absentHeaders: RATE_LIMIT_HEADERS,
        handlerRan: false,
      },
      {
        request: () => get(W1, { 'x-api-key': 'sk_live_not-a-key' }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        handlerRan: false,
      },
    ],
  },
  {
    name: 'an unknown well-formed key: 401 INVALID_API_KEY',
    steps: [
      {
        request: () => get(W1, { 'x-api-key': UNKNOWN_KEY }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        handlerRan: false,
      },
    ],
  },
  {
    name: 'a revoked key: 401 INVALID_API_KEY, same answer as unknown',
    keys: { revoked: { ...READER, state: 'revoked' } },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('revoked') }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        absentHeaders: RATE_LIMIT_HEADERS,
        handlerRan: false,
      },
    ],
  },
  {
    name: 'an expired key: 401 INVALID_API_KEY, same answer as unknown',
    keys: { expired: { ...READER, state: 'expired' } },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('expired') }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        handlerRan: false,
      },
    ],
  },
  {
    name: 'a test key against a live-only app: 401 INVALID_API_KEY',
    options: { environments: ['live'] },
    keys: { test: { ...READER, environment: 'test' }, live: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { authorization: `Bearer ${key('test')}` }),
        status: 401,
        body: INVALID_API_KEY,
        headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
        handlerRan: false,
      },
      {
        request: ({ key }) => get(W1, { authorization: `Bearer ${key('live')}` }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'non-ASCII bytes in a key: 400 INVALID_REQUEST',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => ({
          path: W1,
          rawHeaders: [['x-api-key', Buffer.from(`${key('reader').slice(0, -1)}é`, 'utf8')]],
        }),
        status: 400,
        body: BAD_ENCODING,
        absentHeaders: ['www-authenticate'],
        handlerRan: false,
      },
      {
        request: ({ key }) => ({
          path: W1,
          rawHeaders: [['authorization', Buffer.from(`Bearer ${key('reader')}\u00a0`, 'latin1')]],
        }),
        status: 400,
        body: BAD_ENCODING,
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}?api_key=${key('reader')}%C3%A9`),
        status: 400,
        body: BAD_ENCODING,
        handlerRan: false,
      },
    ],
  },
  {
    name: 'NUL bytes in a key are refused with a 400, never reaching the route',
    keys: { reader: READER },
    steps: [
      {
        // Node's HTTP parser refuses a NUL in a header itself.
        request: ({ key }) => ({ path: W1, rawHeaders: [['x-api-key', `${key('reader')}\0`]] }),
        status: 400,
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`${W1}?api_key=${key('reader')}%00`),
        status: 400,
        body: BAD_ENCODING,
        handlerRan: false,
      },
    ],
  },
  {
    name: 'an oversized key: 400 below the server header limit, 431 above it',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('reader').repeat(100) }),
        status: 400,
        body: failure('INVALID_REQUEST', 'The API key is longer than an API key can be'),
        handlerRan: false,
      },
      {
        request: () => get(W1, { 'x-api-key': `sk_live_${'a'.repeat(16 * 1024)}` }),
        status: 431,
        handlerRan: false,
      },
    ],
  },

  // Scopes and resources (SPEC §3, §8)
  {
    name: 'a missing scope: 403 INSUFFICIENT_SCOPE with the scope in the challenge',
    keys: { tracker: { name: 'server tracker', scopes: ['track:events'] } },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('tracker') }),
        status: 403,
        body: failure('INSUFFICIENT_SCOPE', 'API key lacks the required scope: read:data'),
        headers: {
          'www-authenticate': 'Bearer realm="api", error="insufficient_scope", scope="read:data"',
          ...authenticatedHeaders,
        },
        handlerRan: false,
      },
    ],
  },
  {
    name: 'a key scoped to one website: 403 ACCESS_DENIED on another',
    keys: { w1: { ...READER, resources: ['website:w_1'] } },
    steps: [
      {
        request: ({ key }) => get('/v1/websites/w_2/analytics', { 'x-api-key': key('w1') }),
        status: 403,
        body: failure('ACCESS_DENIED', 'Access to this resource is denied'),
        headers: authenticatedHeaders,
        absentHeaders: ['www-authenticate'],
        handlerRan: false,
      },
      {
        request: ({ key }) => get('/v1/links/l_1/analytics', { 'x-api-key': key('w1') }),
        status: 403,
        body: failure('ACCESS_DENIED', 'Access to this resource is denied'),
        handlerRan: false,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('w1') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) => get('/v1/query/websites', { 'x-api-key': key('w1') }),
        status: 200,
        body: { success: true, data: [{ id: 'w_1', name: 'Website w_1' }] },
        handlerRan: true,
      },
    ],
  },
  {
    name: 'a global key reads any website and link',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get('/v1/websites/w_42/analytics', { 'x-api-key': key('reader') }),
        status: 200,
        body: analytics('w_42'),
        handlerRan: true,
      },
      {
        request: ({ key }) => get('/v1/links/l_9/analytics', { 'x-api-key': key('reader') }),
        status: 200,
        body: linkAnalytics('l_9'),
        handlerRan: true,
      },
    ],
  },

  // Rate limits (SPEC §4)
  {
    name: 'an authenticated response carries X-RateLimit-* and RateLimit-Policy/RateLimit',
    keys: { reader: READER },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('reader') }),
        status: 200,
        body: analytics('w_1'),
        headers: {
          ...authenticatedHeaders,
          'x-ratelimit-limit': '10000',
          'ratelimit-policy': '"burst";q=10000;w=10, "daily";q=10000000;w=86400',
        },
        absentHeaders: ['retry-after'],
        handlerRan: true,
      },
    ],
  },
  {
    name: 'X-RateLimit-Remaining goes down by one per request',
    keys: { slow: { ...READER, rateLimit: { burst: 100, perSecond: 0.001 } } },
    steps: ['99', '98', '97'].map((remaining) => ({
      request: ({ key }: CaseContext) => get(W1, { 'x-api-key': key('slow') }),
      status: 200,
      body: analytics('w_1'),
      headers: {
        ...authenticatedHeaders,
        'x-ratelimit-limit': '100',
        'x-ratelimit-remaining': remaining,
      },
      handlerRan: true,
    })),
  },
  {
    name: 'an exhausted limit: 429 RATE_LIMITED with Retry-After',
    keys: { small: { ...READER, rateLimit: { burst: 2, perSecond: 0.01 } } },
    steps: [
      ...['1', '0'].map((remaining) => ({
        request: ({ key }: CaseContext) => get(W1, { 'x-api-key': key('small') }),
        status: 200,
        body: analytics('w_1'),
        headers: { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': remaining },
        handlerRan: true,
      })),
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('small') }),
        status: 429,
        body: failure('RATE_LIMITED', 'Rate limit exceeded'),
        headers: {
          ...authenticatedHeaders,
          'retry-after': retryAfter,
          'x-ratelimit-limit': '2',
          'x-ratelimit-remaining': '0',
        },
        handlerRan: false,
      },
    ],
  },
  {
    name: 'a public key gets the public tier (burst 1,000)',
    keys: { browser: { name: 'browser', type: 'public', scopes: ['track:events'] } },
    steps: [
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/events',
          headers: { 'x-api-key': key('browser') },
        }),
        status: 202,
        body: { success: true, data: { accepted: true, environment: 'live' } },
        headers: {
          ...authenticatedHeaders,
          'x-ratelimit-limit': '1000',
          'ratelimit-policy': '"burst";q=1000;w=10, "daily";q=1000000;w=86400',
        },
      },
    ],
  },
  {
    name: 'brute-force guard: the 6th bad key from one IP is refused; other IPs are not',
    options: { authFailureLimit: { points: 5, durationSeconds: 60, blockSeconds: 60 } },
    trustProxy: true,
    keys: { reader: READER },
    steps: [
      ...[1, 2, 3, 4, 5].map(() => ({
        request: ({ key }: CaseContext) =>
          get(W1, {
            'x-api-key': breakChecksum(key('reader')),
            'x-forwarded-for': '203.0.113.7',
          }),
        status: 401,
        body: INVALID_API_KEY,
        handlerRan: false,
      })),
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': breakChecksum(key('reader')), 'x-forwarded-for': '203.0.113.7' }),
        status: 429,
        body: failure('RATE_LIMITED', 'Too many failed authentication attempts'),
        headers: { 'retry-after': retryAfter },
        absentHeaders: ['www-authenticate'],
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('reader'), 'x-forwarded-for': '203.0.113.7' }),
        status: 429,
        body: failure('RATE_LIMITED', 'Too many failed authentication attempts'),
        headers: { 'retry-after': retryAfter },
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('reader'), 'x-forwarded-for': '198.51.100.9' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },

  // Public keys and restrictions (issue #6)
  {
    name: 'a public key on a secret-only route: 403 FORBIDDEN',
    keys: { browser: { name: 'browser', type: 'public', scopes: ['track:events', 'read:config'] } },
    steps: [
      {
        request: ({ key }) => get('/v1/query/websites', { 'x-api-key': key('browser') }),
        status: 403,
        body: failure('FORBIDDEN', 'This endpoint requires a secret API key'),
        headers: authenticatedHeaders,
        absentHeaders: ['www-authenticate'],
        handlerRan: false,
      },
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/llm/traces',
          headers: { authorization: `Bearer ${key('browser')}` },
        }),
        status: 403,
        body: failure('FORBIDDEN', 'This endpoint requires a secret API key'),
        headers: authenticatedHeaders,
      },
    ],
  },
  {
    name: 'a public key where public keys are allowed (`POST /v1/events`)',
    keys: {
      browser: { name: 'browser', type: 'public', scopes: ['track:events'] },
      testBrowser: {
        name: 'browser (test)',
        type: 'public',
        environment: 'test',
        scopes: ['track:events'],
      },
    },
    steps: [
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/events',
          headers: { 'x-api-key': key('browser'), 'content-type': 'application/json' },
          body: '{"name":"pageview"}',
        }),
        status: 202,
        body: { success: true, data: { accepted: true, environment: 'live' } },
      },
      {
        request: ({ key }) => ({
          method: 'POST',
          path: `/v1/events?api_key=${key('testBrowser')}`,
        }),
        status: 202,
        body: { success: true, data: { accepted: true, environment: 'test' } },
      },
    ],
  },
  {
    name: 'the management router refuses a public key with a secret-only scope',
    keys: { admin: { name: 'admin', scopes: ['manage:keys'] } },
    steps: [
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/api-keys',
          headers: { authorization: `Bearer ${key('admin')}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'browser', type: 'public', scopes: ['read:data'] }),
        }),
        status: 400,
        body: failure(
          'INVALID_REQUEST',
          'scopes: a public key cannot hold read:data (allowed: track:events, read:config)',
        ),
      },
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/api-keys',
          headers: { authorization: `Bearer ${key('admin')}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'browser', type: 'public', scopes: ['track:events'] }),
        }),
        status: 201,
        body: {
          success: true,
          data: expect.objectContaining({
            type: 'public',
            scopes: ['track:events'],
            secret: expect.stringMatching(/^pk_live_[0-9A-Za-z]{38}$/),
          }),
        },
      },
    ],
  },
  {
    name: 'an IP outside the key’s CIDR allow-list: 403 FORBIDDEN, X-Forwarded-For ignored',
    keys: {
      office: { ...READER, restrictions: { ips: ['10.0.0.0/8'] } },
      loopback: { ...READER, restrictions: { ips: ['127.0.0.1/32'] } },
    },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('office') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this IP address'),
        absentHeaders: ['www-authenticate'],
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('office'), 'x-forwarded-for': '10.1.2.3' }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this IP address'),
        handlerRan: false,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('loopback') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'with proxy trust, X-Forwarded-For names the client for the CIDR allow-list',
    trustProxy: true,
    keys: { office: { ...READER, restrictions: { ips: ['10.0.0.0/8'] } } },
    steps: [
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('office'), 'x-forwarded-for': '10.1.2.3' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('office'), 'x-forwarded-for': '192.0.2.1' }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this IP address'),
        handlerRan: false,
      },
    ],
  },
  {
    name: 'IPv6: `::1` passes an allow-list of `::1/128` and fails one of 127.0.0.1',
    host: '::1',
    keys: {
      v6: { ...READER, restrictions: { ips: ['::1/128'] } },
      v4: { ...READER, restrictions: { ips: ['127.0.0.1/32'] } },
    },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('v6') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('v4') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this IP address'),
        handlerRan: false,
      },
    ],
  },
  {
    name: 'an origin outside the key’s referrer allow-list: 403 FORBIDDEN',
    keys: { web: { ...READER, restrictions: { referrers: ['https://*.example.com'] } } },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('web'), origin: 'https://evil.com' }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this origin'),
        handlerRan: false,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('web') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this origin'),
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('web'), origin: 'https://app.example.com' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('web'), referer: 'https://app.example.com/dashboard?x=1' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'an endpoint outside the key’s endpoint allow-list: 403 FORBIDDEN',
    keys: {
      websitesOnly: { ...READER, restrictions: { endpoints: ['GET /v1/websites/*/analytics'] } },
    },
    steps: [
      {
        request: ({ key }) => get('/v1/links/l_1/analytics', { 'x-api-key': key('websitesOnly') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed to call this endpoint'),
        handlerRan: false,
      },
      {
        request: ({ key }) => get(`/v1/websites/w_1/analytics?api_key=${key('websitesOnly')}`),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },

  // Browser sessions (SPEC §3)
  {
    name: 'a session cookie stands in for a key; an unknown cookie does not',
    sessions: { alice: { ownerId: 'org_default', scopes: ['read:data'] } },
    steps: [
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('alice') }),
        status: 200,
        body: analytics('w_1'),
        headers: authenticatedHeaders,
        handlerRan: true,
      },
      {
        request: ({ cookie }) => ({
          path: W1,
          rawHeaders: [
            ['cookie', 'theme=dark'],
            ['cookie', cookie('alice')],
          ],
        }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: () => get(W1, { cookie: 'keygate_session=forged' }),
        status: 401,
        body: AUTH_REQUIRED,
        headers: { 'www-authenticate': BEARER_CHALLENGE },
        handlerRan: false,
      },
    ],
  },
];
