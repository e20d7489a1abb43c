import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breakChecksum } from './cases.js';
import {
  adapters,
  type CountedApp,
  type RawRequest,
  rawRequest,
  startCountedApp,
} from './harness.js';

const ROUTE = '/v1/websites/w_1/analytics';

/** Requests whose credential is refused in memory, built from the app's one valid key. */
const refused: Array<{ name: string; request: (secret: string) => RawRequest; status: number }> = [
  {
    name: 'a truncated key',
    request: (secret) => ({ target: ROUTE, headers: [['x-api-key', secret.slice(0, 20)]] }),
    status: 401,
  },
  {
    name: 'a wrong checksum',
    request: (secret) => ({
      target: ROUTE,
      headers: [['authorization', `Bearer ${breakChecksum(secret)}`]],
    }),
    status: 401,
  },
  {
    name: 'a character outside base62',
    request: (secret) => ({
      target: ROUTE,
      headers: [['x-api-key', `${secret.slice(0, 12)}-${secret.slice(13)}`]],
    }),
    status: 401,
  },
  {
    name: 'an unknown prefix',
    request: (secret) => ({ target: ROUTE, headers: [['x-api-key', `xk${secret.slice(2)}`]] }),
    status: 401,
  },
  {
    name: 'non-ASCII bytes',
    request: (secret) => ({
      target: ROUTE,
      headers: [['x-api-key', Buffer.from(`${secret}ü`, 'utf8')]],
    }),
    status: 400,
  },
  {
    name: 'a NUL byte in a header',
    request: (secret) => ({ target: ROUTE, headers: [['x-api-key', `${secret}\0`]] }),
    status: 400,
  },
  {
    name: 'a NUL byte in the query string',
    request: (secret) => ({ target: `${ROUTE}?api_key=${secret}%00` }),
    status: 400,
  },
  {
    name: 'an oversized key',
    request: (secret) => ({ target: ROUTE, headers: [['x-api-key', secret.repeat(60)]] }),
    status: 400,
  },
  {
    name: 'a header larger than the server accepts',
    request: (secret) => ({ target: ROUTE, headers: [['x-api-key', secret.repeat(500)]] }),
    status: 431,
  },
  {
    name: '`api_key[]` in the query string',
    request: (secret) => ({ target: `${ROUTE}?api_key[]=${secret}` }),
    status: 400,
  },
  {
    name: '`api_key` repeated',
    request: (secret) => ({ target: `${ROUTE}?api_key=${secret}&api_key=${secret}` }),
    status: 400,
  },
  {
    name: 'two sources with different keys',
    request: (secret) => ({
      target: `${ROUTE}?api_key=${breakChecksum(secret)}`,
      headers: [['x-api-key', secret]],
    }),
    status: 400,
  },
];

describe.each(adapters)('$name: a refused credential costs no store call', (adapter) => {
  let counted: CountedApp;
  beforeAll(async () => {
    counted = await startCountedApp(adapter);
  });
  afterAll(() => counted.close());

  it.each(refused)('$name', async ({ request, status }) => {
    const before = counted.storeCalls();
    const response = await rawRequest(counted.app, request(counted.secret));
    expect(response.status).toBe(status);
    expect(counted.storeCalls() - before).toBe(0);
  });

  it('while a valid key is looked up', async () => {
    const before = counted.storeCalls();
    const response = await rawRequest(counted.app, {
      target: ROUTE,
      headers: [['x-api-key', counted.secret]],
    });
    expect(response.status).toBe(200);
    expect(counted.storeCalls() - before).toBeGreaterThan(0);
  });
});
