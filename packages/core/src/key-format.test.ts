import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateConfigError } from './errors.js';
import {
  brandPrefixes,
  crc32,
  createKeyFormat,
  createKeyHasher,
  DEFAULT_PREFIXES,
  type KeyPrefixes,
} from './key-format.js';
import type { KeyEnvironment, KeyType } from './types.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KINDS: Array<[KeyType, KeyEnvironment]> = [
  ['secret', 'live'],
  ['secret', 'test'],
  ['public', 'live'],
  ['public', 'test'],
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function expectConfigError(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(KeygateConfigError);
  expect((thrown as KeygateConfigError).code).toBe(code);
}

describe('createKeyFormat: generated keys', () => {
  const schemes: Array<[string, KeyPrefixes]> = [
    ['default', DEFAULT_PREFIXES],
    ['brand dbdy', brandPrefixes('dbdy')],
  ];

  for (const [name, prefixes] of schemes) {
    for (const [type, environment] of KINDS) {
      const prefix = prefixes[type][environment];

      it(`${name} ${type}/${environment}: <prefix><32 base62><6 checksum>, parsed back`, () => {
        const format = createKeyFormat(prefixes);
        const shape = new RegExp(`^${escapeRegExp(prefix)}[0-9A-Za-z]{32}[0-9A-Za-z]{6}$`);
        for (let i = 0; i < 50; i++) {
          const key = format.generate(type, environment);
          expect(key.secret).toMatch(shape);
          expect(key.prefix).toBe(prefix);
          expect(key.start).toBe(key.secret.slice(0, prefix.length + 6));

          const parsed = format.parse(key.secret);
          expect(parsed).toEqual({
            secret: key.secret,
            prefix,
            type,
            environment,
            start: key.secret.slice(0, prefix.length + 6),
          });
        }
      });
    }
  }

  it('uses the documented default and brand prefixes', () => {
    expect(DEFAULT_PREFIXES).toEqual({
      secret: { live: 'sk_live_', test: 'sk_test_' },
      public: { live: 'pk_live_', test: 'pk_test_' },
    });
    expect(createKeyFormat(brandPrefixes('dbdy')).generate('public', 'test').secret).toMatch(
      /^dbdy_pk_test_/,
    );
  });

  it('a key of one scheme is not a key of another', () => {
    const plain = createKeyFormat();
    const brand = createKeyFormat(brandPrefixes('dbdy'));
    expect(brand.parse(plain.generate('secret', 'live').secret)).toBeNull();
    expect(plain.parse(brand.generate('secret', 'live').secret)).toBeNull();
  });

  it('matches the longest prefix when one prefix extends another', () => {
    const format = createKeyFormat({
      secret: { live: 'sk_', test: 'sk_test_' },
      public: { live: 'pk_', test: 'pk_test_' },
    });
    const test = format.generate('secret', 'test');
    expect(format.parse(test.secret)).toMatchObject({ type: 'secret', environment: 'test' });
    const live = format.generate('secret', 'live');
    expect(format.parse(live.secret)).toMatchObject({ type: 'secret', environment: 'live' });
  });
});

describe('createKeyFormat: rejects in memory', () => {
  const format = createKeyFormat();

  it('rejects every single-character substitution of a valid key (checksum)', () => {
    const alphabet = `${BASE62}_`;
    for (let k = 0; k < 10; k++) {
      const { secret } = format.generate(KINDS[k % 4]![0], KINDS[k % 4]![1]);
      for (let position = 0; position < secret.length; position++) {
        for (const replacement of alphabet) {
          if (replacement === secret[position]) continue;
          const typo = secret.slice(0, position) + replacement + secret.slice(position + 1);
          expect(format.parse(typo), `${typo} (position ${position})`).toBeNull();
        }
      }
    }
  });

  it('rejects swapped adjacent characters', () => {
    const { secret } = format.generate('secret', 'live');
    for (let i = 8; i < secret.length - 1; i++) {
      if (secret[i] === secret[i + 1]) continue;
      const swapped = secret.slice(0, i) + secret[i + 1] + secret[i] + secret.slice(i + 2);
      expect(format.parse(swapped)).toBeNull();
    }
  });

  it('rejects the wrong length', () => {
    const { secret } = format.generate('secret', 'live');
    expect(format.parse(secret.slice(0, -1))).toBeNull();
    expect(format.parse(`${secret}0`)).toBeNull();
    expect(format.parse(`${secret.slice(0, 20)}${secret.slice(21)}`)).toBeNull();
    expect(format.parse('')).toBeNull();
    expect(format.parse('sk_live_')).toBeNull();
    expect(format.parse(secret.repeat(300))).toBeNull();
  });

  it('rejects an unknown prefix', () => {
    const { secret } = format.generate('secret', 'live');
    expect(format.parse(`rk_live_${secret.slice(8)}`)).toBeNull();
    expect(format.parse(`sk_prod_${secret.slice(8)}`)).toBeNull();
    expect(format.parse(secret.slice(8).padStart(secret.length, 'x'))).toBeNull();
  });

  it('rejects characters outside base62', () => {
    const { secret } = format.generate('public', 'live');
    for (const bad of ['-', '_', '+', '/', '=', ' ', 'é', '\u0000']) {
      expect(format.parse(`${secret.slice(0, 12)}${bad}${secret.slice(13)}`)).toBeNull();
    }
  });

  it('never throws and accepts no random string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 100 }),
          fc.string({ minLength: 38, maxLength: 38 }).map((rest) => `sk_live_${rest}`),
          fc.stringMatching(/^pk_test_[0-9A-Za-z]{38}$/),
        ),
        (candidate) => {
          expect(format.parse(candidate)).toBeNull();
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('exposes the longest possible key length', () => {
    expect(format.maxLength).toBe('sk_live_'.length + 38);
    expect(createKeyFormat(brandPrefixes('dbdy')).maxLength).toBe('dbdy_sk_live_'.length + 38);
  });
});

describe('createKeyFormat: entropy', () => {
  const format = createKeyFormat();

  it('1,000 generated keys are all different, and so are their starts mostly', () => {
    const secrets = new Set<string>();
    const bodies = new Set<string>();
    for (let i = 0; i < 1_000; i++) {
      const { secret } = format.generate('secret', 'live');
      secrets.add(secret);
      bodies.add(secret.slice(8, 40));
    }
    expect(secrets.size).toBe(1_000);
    expect(bodies.size).toBe(1_000);
  });

  it('body characters are spread evenly over the 62 symbols', () => {
    const counts = new Map<string, number>([...BASE62].map((c) => [c, 0]));
    const keys = 5_000;
    for (let i = 0; i < keys; i++) {
      const body = format.generate('secret', 'test').secret.slice(8, 40);
      for (const c of body) counts.set(c, counts.get(c)! + 1);
    }
    expect(counts.size).toBe(62);
    const expected = (keys * 32) / 62;
    let chiSquare = 0;
    for (const count of counts.values()) chiSquare += (count - expected) ** 2 / expected;
    // 61 degrees of freedom: mean 61, sd ≈ 11. 250 is ~17 sd out for a fair source, while the
    // classic `byte % 62` bias (8 symbols 25% likelier) scores about 1,000.
    expect(chiSquare).toBeLessThan(250);
    expect(Math.min(...counts.values())).toBeGreaterThan(expected * 0.8);
  });
});

describe('createKeyFormat: configuration errors', () => {
  it('refuses duplicate prefixes when the format is created', () => {
    expectConfigError(
      () =>
        createKeyFormat({
          secret: { live: 'sk_', test: 'sk_' },
          public: { live: 'pk_live_', test: 'pk_test_' },
        }),
      'INVALID_PREFIX',
    );
  });

  it.each([
    ['no trailing underscore', 'sk_live'],
    ['dashes', 'sk-live-'],
    ['leading digit', '1sk_'],
    ['empty', ''],
    ['a space', 'sk live_'],
    ['too long', `${'a'.repeat(40)}_`],
  ])('refuses a malformed prefix (%s)', (_, prefix) => {
    expectConfigError(
      () =>
        createKeyFormat({
          secret: { live: prefix, test: 'sk_test_' },
          public: { live: 'pk_live_', test: 'pk_test_' },
        }),
      'INVALID_PREFIX',
    );
  });

  it('refuses a missing prefix', () => {
    expectConfigError(
      () => createKeyFormat({ secret: { live: 'sk_live_', test: 'sk_test_' } } as KeyPrefixes),
      'INVALID_PREFIX',
    );
  });

  it('refuses a brand that makes malformed prefixes', () => {
    expectConfigError(() => createKeyFormat(brandPrefixes('my-brand')), 'INVALID_PREFIX');
  });
});

describe('createKeyFormat: redact', () => {
  const format = createKeyFormat();
  const key = format.generate('secret', 'live');

  it('cuts a key anywhere in a text to its start', () => {
    expect(format.redact(`/v1/query/websites;api_key=${key.secret}`)).toBe(
      `/v1/query/websites;api_key=${key.start}`,
    );
    expect(format.redact(`curl/8 (${key.secret}) ${key.secret}`)).toBe(
      `curl/8 (${key.start}) ${key.start}`,
    );
    expect(format.redact(key.secret)).toBe(key.start);
  });

  it('cuts what only looks like a key too: a broken checksum is still most of a secret', () => {
    expect(format.redact(`/x/${key.secret.slice(0, -1)}Z`)).toBe(`/x/${key.start}`);
    expect(format.redact(`/x/${key.secret.slice(0, 20)}`)).toBe(`/x/${key.start}`);
  });

  it('finds a percent-encoded key', () => {
    const encoded = key.secret.replace(/_/g, '%5F');
    expect(format.redact(`/v1/x;k=${encoded}`)).toBe(`/v1/x;k=${key.start}`);
    expect(format.redact('/v1/%E0%A4%A')).toBe('/v1/%E0%A4%A');
  });

  it('leaves other text alone, and knows brand prefixes', () => {
    expect(format.redact('/v1/websites/w_1/analytics')).toBe('/v1/websites/w_1/analytics');
    expect(format.redact('sk_live_abc')).toBe('sk_live_abc');
    const branded = createKeyFormat(brandPrefixes('dbdy'));
    const brandKey = branded.generate('public', 'test');
    expect(branded.redact(`ua ${brandKey.secret}`)).toBe(`ua ${brandKey.start}`);
  });
});

describe('createKeyHasher', () => {
  it('without a pepper: hex SHA-256 (version 0)', () => {
    const hasher = createKeyHasher();
    expect(hasher.version).toBe(0);
    expect(hasher.digest('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('with a pepper: HMAC-SHA256 (version 1), different from SHA-256 and per pepper', () => {
    const secret = createKeyFormat().generate('secret', 'live').secret;
    const plain = createKeyHasher().digest(secret);
    const peppered = createKeyHasher('pepper-0123456789');
    const other = createKeyHasher('pepper-9876543210');
    expect(peppered.version).toBe(1);
    expect(peppered.digest(secret)).toMatch(/^[0-9a-f]{64}$/);
    expect(peppered.digest(secret)).not.toBe(plain);
    expect(peppered.digest(secret)).not.toBe(other.digest(secret));
    expect(peppered.digest(secret)).toBe(peppered.digest(secret));
    expect(plain).toBe(createHash('sha256').update(secret).digest('hex'));
  });

  it('with a pepper, keeps the unpeppered hasher for keys made before it', () => {
    expect(createKeyHasher().legacy).toBeNull();
    const legacy = createKeyHasher('pepper-0123456789').legacy;
    expect(legacy?.version).toBe(0);
    expect(legacy?.digest('abc')).toBe(createKeyHasher().digest('abc'));
  });

  it('refuses a pepper shorter than 16 characters', () => {
    expectConfigError(() => createKeyHasher('fifteen-chars!!'), 'WEAK_PEPPER');
    expectConfigError(() => createKeyHasher(''), 'WEAK_PEPPER');
    expect(createKeyHasher('sixteen-chars!!!').version).toBe(1);
  });
});

describe('crc32', () => {
  it.each([
    ['123456789', 0xcbf43926],
    ['', 0],
    ['a', 0xe8b7be43],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ])('crc32(%j) = %i', (text, value) => {
    expect(crc32(text)).toBe(value);
  });
});
