import {
  type CreateKeyInput,
  createKeyFormat,
  type KeygateOptions,
  type Session,
} from '@keygate/core';
import { expect } from 'vitest';
import type { TrustProxy } from '../../examples/shared/src/runtime.js';

/** What a case's requests can refer to once its keys and sessions exist. */
export interface CaseContext {
  /** The full secret of one of the case's keys. */
  key(name: string): string;
  /** The id of one of the case's keys. */
  id(name: string): string;
  /** The `Cookie` header value of one of the case's sessions. */
  cookie(name: string): string;
  /** The app's own origin, `http://127.0.0.1:<port>`. */
  origin: string;
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
  trustProxy?: TrustProxy;
  host?: '127.0.0.1' | '::1';
  keys?: Record<string, KeySetup>;
  /** The app's own browser sessions; when given, the app resolves `app_session` cookies. */
  sessions?: Record<string, Omit<Session, 'id'>>;
  /** Page sessions by name, each signed in with the named key of `keys` (from 127.0.0.1). */
  pageSessions?: Record<string, string>;
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
    name: 'brute-force guard: the 6th bad key from one IP is refused; a valid key from it is not',
    options: { authFailureLimit: { points: 5, durationSeconds: 60, blockSeconds: 60 } },
    trustProxy: 1,
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
        // Behind one shared IP (an office, a proxy without proxy trust) valid keys go on working.
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('reader'), 'x-forwarded-for': '203.0.113.7' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('reader').slice(0, -2), 'x-forwarded-for': '198.51.100.9' }),
        status: 401,
        body: INVALID_API_KEY,
        handlerRan: false,
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
    keys: { admin: { name: 'admin', scopes: ['manage:keys', 'read:data', 'track:events'] } },
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
    trustProxy: 1,
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
        request: () => get(W1, { cookie: 'app_session=forged' }),
        status: 401,
        body: AUTH_REQUIRED,
        headers: { 'www-authenticate': BEARER_CHALLENGE },
        handlerRan: false,
      },
    ],
  },
];

// Security (issue #16): each case is an attack, written as an attacker would send it.

const IN_A_DAY = new Date(Date.now() + 86_400_000).toISOString();
const IN_A_WEEK = new Date(Date.now() + 7 * 86_400_000).toISOString();
const FORBIDDEN = (error: string) => failure('FORBIDDEN', error);

/** A management request with a JSON body (or none), as a script would send it. */
const manage = (
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): CaseRequest => ({
  method,
  path: `/v1/api-keys${path}`,
  headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
  body: body === undefined ? undefined : JSON.stringify(body),
});
const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

/** What a test admin confined to website w_1, 127.0.0.1, 1 req/s and a week may hand on. */
const CHILD = {
  name: 'child',
  environment: 'test',
  scopes: ['read:data'],
  resources: ['website:w_1'],
  restrictions: { ips: ['127.0.0.1/32'] },
  rateLimit: { perSecond: 1, burst: 10 },
  expiresAt: IN_A_DAY,
};
const CONFINED_ADMIN: KeySetup = {
  name: 'confined admin',
  environment: 'test',
  scopes: ['manage:keys', 'read:data'],
  resources: ['website:w_1'],
  restrictions: { ips: ['127.0.0.1/32'] },
  rateLimit: { perSecond: 1, burst: 100 },
  expiresAt: IN_A_WEEK,
};
const ADMIN: KeySetup = { name: 'admin', scopes: ['manage:keys', 'read:data'] };
const ENVIRONMENT_BOUND = FORBIDDEN(
  'environment: cannot manage a live key, the caller is a test key',
);
const IP_BOUND = FORBIDDEN(
  'restrictions.ips: the caller is limited to IPs 127.0.0.1/32, and so must the key be',
);
const CROSS_SITE = FORBIDDEN('Cross-site requests cannot change API keys');
const NOT_JSON = failure('UNSUPPORTED_MEDIA_TYPE', 'The request body must be application/json');
const NO_ENDPOINT = failure('NOT_FOUND', 'No such API key endpoint');
const created = (fields: Record<string, unknown>) => ({
  success: true,
  data: expect.objectContaining(fields),
});

export const securityCases: ConformanceCase[] = [
  {
    name: 'delegation: a confined test admin key cannot create a key reaching further',
    keys: { admin: CONFINED_ADMIN },
    steps: [
      ...(
        [
          [{ environment: 'live' }, ENVIRONMENT_BOUND],
          [
            { scopes: ['read:data', 'write:llm'] },
            FORBIDDEN('scopes: cannot grant write:llm, which the caller does not hold'),
          ],
          [
            { scopes: ['read:data', 'manage:keys', 'track:events'] },
            FORBIDDEN('scopes: cannot grant track:events, which the caller does not hold'),
          ],
          [
            { resources: null },
            FORBIDDEN(
              'resources: cannot grant access to every resource, which only a global caller has',
            ),
          ],
          [
            { resources: ['website:*'] },
            FORBIDDEN('resources: cannot grant website:*, which the caller does not hold'),
          ],
          [{ restrictions: null }, IP_BOUND],
          [
            { restrictions: { ips: ['0.0.0.0/0'] } },
            FORBIDDEN(
              "restrictions.ips: 0.0.0.0/0 is outside the caller's allowed IPs (127.0.0.1/32)",
            ),
          ],
          [
            { expiresAt: null },
            FORBIDDEN(`expiresAt: the key must expire, as the caller does (${IN_A_WEEK})`),
          ],
          [{ rateLimit: null }, FORBIDDEN("rateLimit.perSecond: 1000 is more than the caller's 1")],
          [
            { rateLimit: { perSecond: 1, burst: 1000 } },
            FORBIDDEN("rateLimit.burst: 1000 is more than the caller's 100"),
          ],
        ] as const
      ).map(([change, body]) => ({
        request: ({ key }: CaseContext) =>
          manage('POST', '', bearer(key('admin')), { ...CHILD, ...change }),
        status: 403,
        body,
      })),
      {
        request: ({ key }) => manage('POST', '', bearer(key('admin')), CHILD),
        status: 201,
        body: created({ environment: 'test', resources: ['website:w_1'], expiresAt: IN_A_DAY }),
      },
    ],
  },
  {
    name: 'delegation: a confined admin key cannot loosen itself',
    keys: { admin: CONFINED_ADMIN },
    steps: [
      ...(
        [
          [{ restrictions: null }, IP_BOUND],
          [
            { restrictions: { ips: ['127.0.0.0/8'] } },
            expect.objectContaining({ code: 'FORBIDDEN' }),
          ],
          [
            { expiresAt: null },
            FORBIDDEN(`expiresAt: the key must expire, as the caller does (${IN_A_WEEK})`),
          ],
          [{ rateLimit: null }, FORBIDDEN("rateLimit.perSecond: 1000 is more than the caller's 1")],
          [
            { resources: ['website:w_1', 'website:w_2'] },
            FORBIDDEN('resources: cannot grant website:w_2, which the caller does not hold'),
          ],
          [
            { scopes: ['manage:keys', 'read:data', 'write:llm'] },
            FORBIDDEN('scopes: cannot grant write:llm, which the caller does not hold'),
          ],
        ] as const
      ).map(([change, body]) => ({
        request: ({ key, id }: CaseContext) =>
          manage('PATCH', `/${id('admin')}`, bearer(key('admin')), change),
        status: 403,
        body,
      })),
      {
        request: ({ key, id }) => manage('GET', `/${id('admin')}`, bearer(key('admin'))),
        status: 200,
        body: created({
          restrictions: { ips: ['127.0.0.1/32'] },
          rateLimit: { perSecond: 1, burst: 100 },
          expiresAt: IN_A_WEEK,
          resources: ['website:w_1'],
        }),
      },
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('admin')}`, bearer(key('admin')), { expiresAt: IN_A_DAY }),
        status: 200,
        body: created({ expiresAt: IN_A_DAY }),
      },
    ],
  },
  {
    name: "delegation: a confined admin key cannot rotate, revoke or change the owner's live key",
    keys: { admin: CONFINED_ADMIN, production: { name: 'production', scopes: ['read:data'] } },
    steps: [
      {
        request: ({ key, id }) =>
          manage('POST', `/${id('production')}/rotate`, bearer(key('admin')), {}),
        status: 403,
        body: ENVIRONMENT_BOUND,
      },
      {
        request: ({ key, id }) => manage('DELETE', `/${id('production')}`, bearer(key('admin'))),
        status: 403,
        body: ENVIRONMENT_BOUND,
      },
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('production')}`, bearer(key('admin')), { scopes: [] }),
        status: 403,
        body: ENVIRONMENT_BOUND,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('production') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'delegation: `website:*` grants any website, never another resource type',
    keys: { admin: { ...ADMIN, resources: ['website:*'] } },
    steps: [
      {
        request: ({ key }) =>
          manage('POST', '', bearer(key('admin')), {
            name: 'one site',
            scopes: ['read:data'],
            resources: ['website:w_9'],
          }),
        status: 201,
        body: created({ resources: ['website:w_9'] }),
      },
      {
        request: ({ key }) =>
          manage('POST', '', bearer(key('admin')), {
            name: 'links',
            scopes: ['read:data'],
            resources: ['link:l_1'],
          }),
        status: 403,
        body: FORBIDDEN('resources: cannot grant link:l_1, which the caller does not hold'),
      },
    ],
  },

  {
    name: 'CSRF: a cross-site form cannot create or rotate keys with the session cookie',
    sessions: {
      admin: { ownerId: 'org_default', scopes: ['manage:keys', 'read:data'], admin: true },
    },
    keys: { victim: READER },
    steps: [
      {
        request: ({ cookie }) => ({
          method: 'POST',
          path: '/v1/api-keys',
          headers: {
            cookie: cookie('admin'),
            origin: 'https://evil.example',
            'content-type': 'text/plain',
          },
          body: JSON.stringify({ name: 'planted', scopes: ['manage:keys'] }),
        }),
        status: 403,
        body: CROSS_SITE,
      },
      {
        request: ({ cookie, id }) => ({
          method: 'POST',
          path: `/v1/api-keys/${id('victim')}/rotate`,
          headers: {
            cookie: cookie('admin'),
            origin: 'https://evil.example',
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: 'x=1',
        }),
        status: 403,
        body: CROSS_SITE,
      },
      {
        request: ({ cookie }) =>
          manage('POST', '', { cookie: cookie('admin'), 'sec-fetch-site': 'cross-site' }, READER),
        status: 403,
        body: CROSS_SITE,
      },
      {
        // No Origin and no Sec-Fetch-Site: nothing shows the request came from the app's page.
        request: ({ cookie }) => manage('POST', '', { cookie: cookie('admin') }, READER),
        status: 403,
        body: CROSS_SITE,
      },
      {
        request: ({ cookie, id }) =>
          manage('DELETE', `/${id('victim')}`, {
            cookie: cookie('admin'),
            origin: 'https://evil.example',
          }),
        status: 403,
        body: CROSS_SITE,
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('victim') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
      {
        request: ({ cookie }) =>
          manage('GET', '', { cookie: cookie('admin'), origin: 'https://evil.example' }),
        status: 200,
        body: { success: true, data: [expect.objectContaining({ name: 'reader' })] },
      },
    ],
  },
  {
    name: 'CSRF: the app’s own page changes keys with JSON; any other body is 415',
    sessions: {
      admin: { ownerId: 'org_default', scopes: ['manage:keys', 'read:data'], admin: true },
    },
    keys: { admin: ADMIN },
    steps: [
      {
        request: ({ cookie, origin }) => ({
          method: 'POST',
          path: '/v1/api-keys',
          headers: { cookie: cookie('admin'), origin, 'content-type': 'text/plain' },
          body: JSON.stringify(READER),
        }),
        status: 415,
        body: NOT_JSON,
        headers: { connection: 'close' },
      },
      {
        request: ({ cookie, origin }) =>
          manage('POST', '', { cookie: cookie('admin'), origin }, READER),
        status: 201,
        body: created({ name: 'reader', scopes: ['read:data'] }),
      },
      {
        request: ({ cookie }) =>
          manage('POST', '', { cookie: cookie('admin'), 'sec-fetch-site': 'same-origin' }, READER),
        status: 201,
        body: created({ name: 'reader' }),
      },
      {
        request: ({ key }) => ({
          method: 'POST',
          path: '/v1/api-keys',
          headers: { ...bearer(key('admin')), 'content-type': 'text/plain' },
          body: JSON.stringify(READER),
        }),
        status: 415,
        body: NOT_JSON,
      },
      {
        // A key cannot be attached by another site's page: no origin is asked of it.
        request: ({ key }) =>
          manage(
            'POST',
            '',
            { ...bearer(key('admin')), origin: 'https://elsewhere.example' },
            READER,
          ),
        status: 201,
        body: created({ name: 'reader' }),
      },
    ],
  },

  {
    name: 'guard: IPv6 clients are counted by /64, not per address',
    options: { authFailureLimit: { points: 3, durationSeconds: 60, blockSeconds: 60 } },
    trustProxy: 1,
    keys: { reader: READER },
    steps: [
      ...['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2::3'].map((address) => ({
        request: ({ key }: CaseContext) =>
          get(W1, { 'x-api-key': breakChecksum(key('reader')), 'x-forwarded-for': address }),
        status: 401,
        body: INVALID_API_KEY,
        handlerRan: false,
      })),
      {
        request: ({ key }) =>
          get(W1, {
            'x-api-key': breakChecksum(key('reader')),
            'x-forwarded-for': '2001:db8:1:2:ffff:ffff:ffff:4',
          }),
        status: 429,
        body: failure('RATE_LIMITED', 'Too many failed authentication attempts'),
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, {
            'x-api-key': breakChecksum(key('reader')),
            'x-forwarded-for': '2001:db8:1:3::1',
          }),
        status: 401,
        body: INVALID_API_KEY,
        handlerRan: false,
      },
    ],
  },

  {
    name: 'proxies: with one trusted hop, a forged leftmost X-Forwarded-For is not the client',
    trustProxy: 1,
    keys: { office: { ...READER, restrictions: { ips: ['10.0.0.0/8'] } } },
    steps: [
      {
        // The client sent `X-Forwarded-For: 10.1.2.3`; the proxy appended the address it saw.
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('office'), 'x-forwarded-for': '10.1.2.3, 192.0.2.1' }),
        status: 403,
        body: FORBIDDEN('This API key is not allowed from this IP address'),
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, { 'x-api-key': key('office'), 'x-forwarded-for': '192.0.2.1, 10.1.2.3' }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'proxies: with two trusted hops, the client is the second address from the right',
    trustProxy: 2,
    keys: { partner: { ...READER, restrictions: { ips: ['203.0.113.0/24'] } } },
    steps: [
      {
        request: ({ key }) =>
          get(W1, {
            'x-api-key': key('partner'),
            'x-forwarded-for': '203.0.113.9, 192.0.2.1, 10.9.9.9',
          }),
        status: 403,
        body: FORBIDDEN('This API key is not allowed from this IP address'),
        handlerRan: false,
      },
      {
        request: ({ key }) =>
          get(W1, {
            'x-api-key': key('partner'),
            'x-forwarded-for': '192.0.2.1, 203.0.113.9, 10.9.9.9',
          }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },
  {
    name: 'proxies: trusted by address, the client is the rightmost address not a trusted proxy',
    trustProxy: ['127.0.0.1', '10.0.0.0/8'],
    keys: { partner: { ...READER, restrictions: { ips: ['203.0.113.0/24'] } } },
    steps: [
      ...['203.0.113.9', '203.0.113.9, 10.9.9.9', '192.0.2.1, 203.0.113.9, 10.1.1.1, 10.9.9.9'].map(
        (forwarded) => ({
          request: ({ key }: CaseContext) =>
            get(W1, { 'x-api-key': key('partner'), 'x-forwarded-for': forwarded }),
          status: 200,
          body: analytics('w_1'),
          handlerRan: true,
        }),
      ),
      ...['203.0.113.9, 192.0.2.1', '203.0.113.9, 192.0.2.1, 10.9.9.9'].map((forwarded) => ({
        request: ({ key }: CaseContext) =>
          get(W1, { 'x-api-key': key('partner'), 'x-forwarded-for': forwarded }),
        status: 403,
        body: FORBIDDEN('This API key is not allowed from this IP address'),
        handlerRan: false,
      })),
    ],
  },

  {
    name: 'paths: `%2F` in a key id never reaches another management route',
    keys: {
      narrow: { ...ADMIN, restrictions: { endpoints: ['POST /v1/api-keys/*'] } },
      victim: READER,
    },
    steps: [
      ...['%2F', '%2f'].map((slash) => ({
        request: ({ key, id }: CaseContext) =>
          manage('POST', `/${id('victim')}${slash}rotate`, bearer(key('narrow')), {}),
        status: 404,
        body: NO_ENDPOINT,
      })),
      {
        request: ({ key, id }) =>
          manage('POST', `/${id('victim')}/rotate`, bearer(key('narrow')), {}),
        status: 403,
        body: FORBIDDEN('This API key is not allowed to call this endpoint'),
      },
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('victim') }),
        status: 200,
        body: analytics('w_1'),
        handlerRan: true,
      },
    ],
  },

  {
    name: 'paths: the management router reads the path as sent, on every adapter alike',
    keys: { admin: ADMIN },
    steps: [
      ...[
        '/ID/..',
        '/ID/../',
        '/x/../ID',
        '/./ID',
        '//ID',
        '/ID%2F',
        '/ID%2Fevents',
        '/%6Bey_x',
      ].map((path) => ({
        // Sent over a socket as written: `fetch` would resolve the dot segments itself.
        request: ({ key, id }: CaseContext) => ({
          path: `/v1/api-keys${path.replace('ID', id('admin'))}`,
          rawHeaders: [['authorization', `Bearer ${key('admin')}`]] as Array<[string, string]>,
        }),
        status: 404,
        body: NO_ENDPOINT,
      })),
      {
        request: ({ key, id }) => ({
          path: `/v1/api-keys/${id('admin')}/`,
          rawHeaders: [['authorization', `Bearer ${key('admin')}`]],
        }),
        status: 200,
        body: created({ name: 'admin' }),
      },
    ],
  },

  {
    name: 'hostile strings in a management body: 400 naming the field, nothing stored',
    keys: { admin: ADMIN, victim: READER },
    steps: [
      ...(
        [
          [{ name: 'a\u0000b' }, 'name: must not contain a control character'],
          [
            { metadata: { a: { b: ['ok', '\ud800'] } } },
            'metadata.a.b.1: must not contain an unpaired surrogate',
          ],
          [{ resources: ['website:w\u0000'] }, 'resources.0: must not contain a control character'],
          [
            { expiresAt: '+275760-09-13T00:00:00.000Z' },
            'expiresAt: expiresAt must be before the year 10000',
          ],
        ] as const
      ).map(([change, error]) => ({
        request: ({ key }: CaseContext) =>
          manage('POST', '', bearer(key('admin')), { ...READER, ...change }),
        status: 400,
        body: failure('INVALID_REQUEST', error),
      })),
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('victim')}`, bearer(key('admin')), { metadata: { 'k\u001b': 1 } }),
        status: 400,
        body: failure(
          'INVALID_REQUEST',
          'metadata: a field name must not contain a control character',
        ),
      },
      {
        request: ({ key }) => manage('GET', '?after=%00', bearer(key('admin'))),
        status: 400,
        body: failure('INVALID_REQUEST', 'after must be a key id'),
      },
      {
        request: ({ key }) => manage('GET', '?include_revoked=true', bearer(key('admin'))),
        status: 200,
        body: {
          success: true,
          data: expect.toSatisfy(
            (keys: Array<{ name: string; metadata: unknown }>) =>
              keys
                .map((k) => `${k.name}:${JSON.stringify(k.metadata)}`)
                .sort()
                .join() === 'admin:null,reader:null',
            'the two keys the case made, unchanged',
          ),
        },
      },
    ],
  },

  {
    name: "the list cursor: another tenant's key id answers exactly as an unknown id",
    keys: {
      admin: ADMIN,
      mine: READER,
      theirs: { ...READER, name: 'theirs', ownerId: 'org_other' },
    },
    steps: [
      {
        request: ({ key, id }) => manage('GET', `?after=${id('theirs')}`, bearer(key('admin'))),
        status: 200,
        body: { success: true, data: [] },
      },
      {
        request: ({ key }) => manage('GET', '?after=key_doesnotexist', bearer(key('admin'))),
        status: 200,
        body: { success: true, data: [] },
      },
    ],
  },

  {
    name: 'environments: a test key reads test data, a live key live data',
    keys: { live: READER, test: { ...READER, environment: 'test' } },
    steps: [
      {
        request: ({ key }) => get(W1, { 'x-api-key': key('live') }),
        status: 200,
        body: {
          success: true,
          data: expect.objectContaining({ websiteId: 'w_1', environment: 'live' }),
        },
        handlerRan: true,
      },
      {
        request: ({ key }) => get('/v1/links/l_1/analytics', { 'x-api-key': key('test') }),
        status: 200,
        body: {
          success: true,
          data: expect.objectContaining({ linkId: 'l_1', environment: 'test' }),
        },
        handlerRan: true,
      },
    ],
  },
];
