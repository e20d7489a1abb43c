import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { KeygateConfigError } from './errors.js';
import type { KeyEnvironment, KeyType } from './types.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 32 base62 characters ≈ 190 bits of entropy. */
const BODY_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
/** Characters of the body kept in `start` for display. */
const START_BODY_CHARS = 6;
const PREFIX_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,31}_$/;
const BASE62_PATTERN = /^[0-9A-Za-z]+$/;

export type KeyPrefixes = Record<KeyType, Record<KeyEnvironment, string>>;

export const DEFAULT_PREFIXES: KeyPrefixes = {
  secret: { live: 'sk_live_', test: 'sk_test_' },
  public: { live: 'pk_live_', test: 'pk_test_' },
};

/** Prefixes under a brand, e.g. `brandPrefixes('dbdy')` → `dbdy_sk_live_`, `dbdy_pk_test_`, ... */
export function brandPrefixes(brand: string): KeyPrefixes {
  return {
    secret: { live: `${brand}_sk_live_`, test: `${brand}_sk_test_` },
    public: { live: `${brand}_pk_live_`, test: `${brand}_pk_test_` },
  };
}

export interface ParsedKey {
  secret: string;
  prefix: string;
  type: KeyType;
  environment: KeyEnvironment;
  start: string;
}

export interface KeyFormat {
  readonly prefixes: KeyPrefixes;
  readonly maxLength: number;
  generate(type: KeyType, environment: KeyEnvironment): ParsedKey;
  /** Recognises a well-formed key with a valid checksum, in memory; `null` for anything else. */
  parse(candidate: string): ParsedKey | null;
  /**
   * `text` with anything that looks like a key (a prefix, then more body characters than `start`
   * shows) cut to its `start`, percent-encoded ones too: for paths and headers that are recorded.
   */
  redact(text: string): string;
}

export function createKeyFormat(prefixes: KeyPrefixes = DEFAULT_PREFIXES): KeyFormat {
  const entries: Array<{ prefix: string; type: KeyType; environment: KeyEnvironment }> = [];
  for (const type of ['secret', 'public'] as const) {
    for (const environment of ['live', 'test'] as const) {
      const prefix = prefixes[type]?.[environment];
      if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
        throw new KeygateConfigError(
          'INVALID_OPTION',
          `prefixes: prefix for ${type}/${environment} must match ${PREFIX_PATTERN} (got ${JSON.stringify(prefix)})`,
        );
      }
      entries.push({ prefix, type, environment });
    }
  }
  if (new Set(entries.map((e) => e.prefix)).size !== entries.length) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'prefixes: the four key prefixes must be distinct',
    );
  }
  // Longest first, so a brand prefix that extends another is matched whole.
  entries.sort((a, b) => b.prefix.length - a.prefix.length);
  const maxLength =
    Math.max(...entries.map((e) => e.prefix.length)) + BODY_LENGTH + CHECKSUM_LENGTH;

  // A broken checksum is still most of a secret: anything shaped like a key is cut, valid or not.
  const keyLike = new RegExp(
    `(${entries.map((e) => e.prefix).join('|')})([0-9A-Za-z]{${START_BODY_CHARS}})[0-9A-Za-z]+`,
    'g',
  );
  const cut = (text: string) => text.replace(keyLike, '$1$2');

  const describe = (secret: string, entry: (typeof entries)[number]): ParsedKey => ({
    secret,
    prefix: entry.prefix,
    type: entry.type,
    environment: entry.environment,
    start: secret.slice(0, entry.prefix.length + START_BODY_CHARS),
  });

  return {
    prefixes,
    maxLength,
    generate(type, environment) {
      const entry = entries.find((e) => e.type === type && e.environment === environment)!;
      const head = entry.prefix + randomBase62(BODY_LENGTH);
      return describe(head + checksum(head), entry);
    },
    parse(candidate) {
      if (candidate.length > maxLength) return null;
      const entry = entries.find((e) => candidate.startsWith(e.prefix));
      if (!entry || candidate.length !== entry.prefix.length + BODY_LENGTH + CHECKSUM_LENGTH) {
        return null;
      }
      const rest = candidate.slice(entry.prefix.length);
      if (!BASE62_PATTERN.test(rest)) return null;
      const head = candidate.slice(0, candidate.length - CHECKSUM_LENGTH);
      if (checksum(head) !== candidate.slice(-CHECKSUM_LENGTH)) return null;
      return describe(candidate, entry);
    },
    redact(text) {
      // Most texts hold no key: a few substring searches cost less than the regular expression.
      if (!text.includes('%') && !entries.some((e) => text.includes(e.prefix))) return text;
      const redacted = cut(text);
      if (!redacted.includes('%')) return redacted;
      let decoded: string;
      try {
        decoded = decodeURIComponent(redacted);
      } catch {
        return redacted;
      }
      const hidden = cut(decoded);
      return hidden === decoded ? redacted : hidden;
    },
  };
}

/** Uniform base62 from the CSPRNG (rejection sampling keeps every character equally likely). */
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(head: string): string {
  let value = crc32(head);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export interface KeyHasher {
  /** 0: plain SHA-256; 1: HMAC-SHA256 with the pepper. */
  readonly version: number;
  digest(secret: string): string;
  /**
   * With a pepper: the hasher of keys made before it was configured (version 0), which stay
   * valid and are looked up by their old digest. `null` without a pepper.
   */
  readonly legacy: KeyHasher | null;
}

// One-shot `crypto.hash` (Node 20.12+) costs a third of a `Hash` object per key.
const oneShot = (nodeCrypto as Partial<typeof nodeCrypto>).hash;

const SHA256: KeyHasher = {
  version: 0,
  digest: oneShot
    ? (secret) => oneShot('sha256', secret, 'hex')
    : (secret) => createHash('sha256').update(secret).digest('hex'),
  legacy: null,
};

export function createKeyHasher(pepper?: string): KeyHasher {
  if (pepper !== undefined && pepper.length < 16) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'pepper: the pepper must be at least 16 characters',
    );
  }
  if (pepper === undefined) return SHA256;
  return {
    version: 1,
    digest: (secret) => createHmac('sha256', pepper).update(secret).digest('hex'),
    legacy: SHA256,
  };
}
