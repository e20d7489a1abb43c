import { createKeyFormat, ERROR_CODES, type ErrorCode } from '@keygate/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breakChecksum } from './cases.js';
import {
  adapters,
  type CountedApp,
  type RawRequest,
  type RawResponse,
  rawRequest,
  startCountedApp,
} from './harness.js';

const NUM_RUNS = 150;
const ROUTE = '/v1/websites/w_1/analytics';
const format = createKeyFormat();
const CANDIDATE = /(?:sk|pk)_(?:live|test)_[0-9A-Za-z]{38}/g;

/** Whether the bytes sent hold a well-formed key with a valid checksum, the only thing worth a lookup. */
function holdsWellFormedKey(text: string): boolean {
  let decoded = text;
  try {
    decoded = decodeURIComponent(text);
  } catch {}
  return [text, decoded].some((variant) =>
    [...variant.matchAll(CANDIDATE)].some(([candidate]) => format.parse(candidate) !== null),
  );
}

/**
 * What every answer must look like: never a 5xx; a body, when there is one, is the API's JSON, and a
 * failure carries its code's status. (Node refuses some bytes itself, with a bare 400 or 431.)
 */
function expectWellFormedAnswer(response: RawResponse): void {
  expect(response.status).toBeGreaterThanOrEqual(200);
  expect(response.status).toBeLessThan(500);
  if (response.body === '') return;
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(response.body) as { success: boolean; code?: ErrorCode };
  if (body.success) {
    expect(response.status).toBe(200);
  } else {
    expect(body).toEqual({ success: false, error: expect.any(String), code: expect.any(String) });
    expect(response.status).toBe(ERROR_CODES[body.code!].status);
  }
}

const FRAGMENTS = [
  'Bearer ',
  'bearer',
  'Basic ',
  'sk_live_',
  'pk_test_',
  ' ',
  '\t',
  '\0',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\ufeff',
  'é',
  '🔑',
  '"',
  ',',
  ';',
  '=',
  '\\',
  '%00',
];

/** Pieces of a credential: junk of every kind, and the valid key whole, broken or cut. */
function piece(secret: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.stringMatching(/^[0-9A-Za-z_]{0,60}$/),
    fc.constantFrom(...FRAGMENTS),
    fc.constantFrom(secret, breakChecksum(secret), secret.slice(0, -1), `${secret}0`),
  );
}

/** A header value as bytes, in UTF-8 or Latin-1; CR and LF are left out, as they end the header. */
function headerBytes(secret: string): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.array(piece(secret), { maxLength: 4 }), fc.constantFrom('utf8', 'latin1' as const))
    .map(([parts, encoding]) =>
      Buffer.from(Buffer.from(parts.join(''), encoding).filter((b) => b !== 10 && b !== 13)),
    );
}

/** Query-string values: percent-encoded junk, raw UTF-8, broken escapes, and the key itself. */
function queryValue(secret: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
    // Raw bytes in the target, without the whitespace and controls that would end the request line.
    fc.string({ unit: 'binary', maxLength: 40 }).map((t) => t.replace(/[\s\0-\x1f\x7f]/g, '')),
    fc.stringMatching(/^[A-Za-z0-9_%.~+=[\]-]{0,40}$/),
    fc.constantFrom('%', '%zz', '%00', '%C0%80', '%E0%A4%A', '%FF', '%ED%A0%80', '+', '%2B', '#'),
    fc.constantFrom(secret, breakChecksum(secret), `%20${secret}%20`, `${secret}%C2%A0`),
  );
}

function queryString(secret: string): fc.Arbitrary<string> {
  const name = fc.constantFrom(
    'api_key',
    'api_key[]',
    'api_key[0]',
    'api_key%5B%5D',
    'api%5Fkey',
    'API_KEY',
    'api_key.x',
    '__proto__',
    '',
  );
  const pair = fc
    .tuple(name, fc.option(queryValue(secret), { nil: undefined }))
    .map(([key, value]) => (value === undefined ? key : `${key}=${value}`));
  return fc
    .tuple(fc.array(pair, { maxLength: 4 }), fc.constantFrom('&', ';', '&&'))
    .map(([pairs, separator]) => pairs.join(separator));
}

describe.each(adapters)('$name: arbitrary input', (adapter) => {
  let counted: CountedApp;
  beforeAll(async () => {
    counted = await startCountedApp(adapter);
  });
  afterAll(() => counted.close());

  async function check(request: RawRequest, sent: string): Promise<void> {
    const before = counted.storeCalls();
    const response = await rawRequest(counted.app, request);
    expectWellFormedAnswer(response);
    if (!holdsWellFormedKey(sent)) expect(counted.storeCalls() - before).toBe(0);
  }

  it('in Authorization and x-api-key never gives a 5xx nor reaches the store unless a key is well-formed', async () => {
    const value = fc.option(headerBytes(counted.secret), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(value, value, async (authorization, apiKey) => {
        const headers: Array<[string, Buffer]> = [];
        if (authorization) headers.push(['authorization', authorization]);
        if (apiKey) headers.push(['x-api-key', apiKey]);
        const sent = headers.map(([, bytes]) => bytes.toString('latin1')).join('\n');
        await check({ target: ROUTE, headers }, sent);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('in the query string never gives a 5xx nor reaches the store unless a key is well-formed', async () => {
    await fc.assert(
      fc.asyncProperty(queryString(counted.secret), async (query) => {
        await check({ target: `${ROUTE}?${query}` }, query);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('in the resource id of a guarded route never gives a 5xx nor a non-JSON body', async () => {
    const segment = fc.oneof(
      queryValue(counted.secret),
      fc.constantFrom('..', '.', '%2e%2e', '%2F', '%5C', '%C0%AF', 'w_1%', '%25', '*', 'w_1:x'),
    );
    await fc.assert(
      fc.asyncProperty(segment, async (id) => {
        const response = await rawRequest(counted.app, {
          target: `/v1/websites/${id || 'w_1'}/analytics`,
          headers: [['x-api-key', counted.secret]],
        });
        expectWellFormedAnswer(response);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
