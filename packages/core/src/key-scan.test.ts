import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { brandPrefixes, createKeyFormat } from './key-format.js';
import { findKeys, KeyFinder, type ScanStats } from './key-scan.js';

const format = createKeyFormat();

describe('findKeys', () => {
  it('finds each kind of key with its line, column, start, type and environment', () => {
    const live = format.generate('secret', 'live');
    const test = format.generate('secret', 'test');
    const pub = format.generate('public', 'live');
    const text = `const a = "${live.secret}";\n\n  key: ${test.secret}\n${pub.secret}`;
    const found = findKeys(text, format);
    expect(found.map((k) => [k.line, k.column, k.start, k.type, k.environment])).toEqual([
      [1, 12, live.start, 'secret', 'live'],
      [3, 8, test.start, 'secret', 'test'],
      [4, 1, pub.start, 'public', 'live'],
    ]);
    expect(found.map((k) => k.secret)).toEqual([live.secret, test.secret, pub.secret]);
    expect(found[0]!.offset).toBe(11);
  });

  it('never shows the secret when a found key is printed or serialised', () => {
    const key = format.generate('secret', 'live');
    const [found] = findKeys(`x ${key.secret} y`, format);
    expect(JSON.stringify(found)).not.toContain(key.secret);
    expect(Object.keys(found!)).not.toContain('secret');
    expect(found!.secret).toBe(key.secret);
  });

  it('ignores strings shaped like a key whose checksum does not hold', () => {
    const key = format.generate('secret', 'live');
    const flipped = key.secret.slice(0, -1) + (key.secret.endsWith('A') ? 'B' : 'A');
    const short = key.secret.slice(0, -1);
    expect(findKeys(`${flipped} ${short} sk_live_ sk_live_${'a'.repeat(60)}`, format)).toEqual([]);
  });

  it('finds keys glued to other text, one after another', () => {
    const a = format.generate('secret', 'live');
    const b = format.generate('public', 'test');
    const found = findKeys(`token=${a.secret}${b.secret}&x`, format);
    expect(found.map((k) => k.start)).toEqual([a.start, b.start]);
  });

  it('finds keys with a brand prefix, not keys of another scheme', () => {
    const branded = createKeyFormat(brandPrefixes('dbdy'));
    const mine = branded.generate('secret', 'live');
    const other = format.generate('secret', 'live');
    const found = findKeys(`${mine.secret}\n${other.secret}`, branded);
    expect(found.map((k) => k.start)).toEqual([mine.start]);
  });

  it('reads bytes as well as text (a UTF-8 file with other scripts before the key)', () => {
    const key = format.generate('secret', 'test');
    const bytes = new TextEncoder().encode(`héllo wörld ✓\n→ ${key.secret}`);
    const [found] = findKeys(bytes, format);
    expect(found).toMatchObject({ line: 2, start: key.start });
  });
});

describe('KeyFinder: chunk by chunk', () => {
  it('finds a key split across chunks once, at its line, whatever the split', () => {
    const key = format.generate('secret', 'live');
    const text = new TextEncoder().encode(`a\nb\n  ${key.secret}\n`);
    for (let cut = 0; cut <= text.length; cut++) {
      const finder = new KeyFinder(format);
      const found = [
        ...finder.push(text.subarray(0, cut)),
        ...finder.push(text.subarray(cut)),
        ...finder.end(),
      ];
      expect(found.map((k) => [k.line, k.column, k.offset, k.start])).toEqual([
        [3, 3, 6, key.start],
      ]);
    }
  });

  it('gives the same keys, lines and offsets as one pass, for any chunking (property)', () => {
    const keys = Array.from({ length: 4 }, () => format.generate('secret', 'live').secret);
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 30 }), fc.constant('\n')),
        ),
        fc.array(fc.nat({ max: 40 }), { maxLength: 10 }),
        (parts, sizes) => {
          const bytes = new TextEncoder().encode(parts.join(''));
          const whole = findKeys(bytes, format).map((k) => [k.offset, k.line, k.column, k.secret]);
          const finder = new KeyFinder(format);
          const pieces = [];
          let at = 0;
          for (const size of sizes) {
            pieces.push(...finder.push(bytes.subarray(at, at + size)));
            at += size;
          }
          pieces.push(...finder.push(bytes.subarray(at)), ...finder.end());
          expect(pieces.map((k) => [k.offset, k.line, k.column, k.secret])).toEqual(whole);
          expect(whole).toHaveLength(parts.filter((p) => keys.includes(p)).length);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('findKeys: bounded work', () => {
  /** Steps per input byte for `text` repeated to `bytes` bytes. */
  function stepsPerByte(unit: string, bytes: number, scheme = format): number {
    const text = unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
    const stats: ScanStats = { steps: 0 };
    findKeys(text, scheme, stats);
    return stats.steps / bytes;
  }

  const key = format.generate('secret', 'live').secret;
  const almost = `${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`;
  const branded = createKeyFormat(brandPrefixes('a_b_c_d_e_f_g_h_i_j_k_l'));
  const worst: Array<[string, string, typeof format]> = [
    ['underscores only', '_', format],
    ['prefixes back to back', 'sk_live_', format],
    ['prefix, base62 run, no checksum', `sk_live_${'a'.repeat(37)}_`, format],
    ['keys that fail their checksum', almost, format],
    ['valid keys back to back', key, format],
    ['long brand prefix made of underscores', 'a_b_c_d_e_f_g_h_i_j_k_l_', branded],
  ];

  for (const [name, unit, scheme] of worst) {
    it(`${name}: a bounded number of steps per byte, the same at 8 times the size`, () => {
      const small = stepsPerByte(unit, 64 * 1024, scheme);
      const large = stepsPerByte(unit, 512 * 1024, scheme);
      // Each `_` costs at most the prefixes' total length, each candidate the key's length.
      expect(small).toBeLessThanOrEqual(64);
      expect(large).toBeLessThanOrEqual(small * 1.01);
    });
  }

  it('plain text costs about one step a byte', () => {
    expect(stepsPerByte('the quick brown fox; ', 256 * 1024)).toBeLessThan(1.01);
  });
});
