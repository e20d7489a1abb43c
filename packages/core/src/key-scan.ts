import type { KeyFormat } from './key-format.js';
import type { KeyEnvironment, KeyType } from './types.js';

/** A key of this deployment found in some text: where, and what it is. */
export interface FoundKey {
  /** Byte offset of its first character in the input. */
  offset: number;
  /** 1-based line of its first character. */
  line: number;
  /** 1-based column (in bytes) of its first character. */
  column: number;
  /** Prefix plus the first body characters: what may be shown. */
  start: string;
  type: KeyType;
  environment: KeyEnvironment;
  /**
   * The full secret, to look it up by digest. Not enumerable: printing or serialising a found key
   * (`console.log`, `JSON.stringify`) never shows it.
   */
  readonly secret: string;
}

/** Work done by a finder: every byte it searched or compared, so a test can bound it by the input's length. */
export interface ScanStats {
  steps: number;
}

const UNDERSCORE = 0x5f;
const NEWLINE = 0x0a;

/** Which bytes a key's body and checksum are made of (base62). */
const BASE62_BYTE = (() => {
  const table = new Uint8Array(256);
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1;
  return table;
})();

const encoder = new TextEncoder();

/** A format's prefixes as bytes, longest first, and the length of a key after its prefix. */
interface Anchors {
  prefixes: Uint8Array[];
  /** Characters after the prefix: body and checksum. */
  tail: number;
  /** The longest key, in bytes. */
  longest: number;
  /** 1 for each byte that comes right before the final `_` of some prefix. */
  beforeUnderscore: Uint8Array;
}

const anchorsByFormat = new WeakMap<KeyFormat, Anchors>();

function anchorsOf(format: KeyFormat): Anchors {
  let anchors = anchorsByFormat.get(format);
  if (!anchors) {
    const texts = new Set<string>();
    for (const type of ['secret', 'public'] as const) {
      for (const environment of ['live', 'test'] as const) {
        texts.add(format.prefixes[type][environment]);
      }
    }
    const prefixes = [...texts].sort((a, b) => b.length - a.length).map((p) => encoder.encode(p));
    const longestPrefix = prefixes[0]!.length;
    const tail = format.maxLength - longestPrefix;
    const beforeUnderscore = new Uint8Array(256);
    for (const prefix of prefixes) beforeUnderscore[prefix[prefix.length - 2]!] = 1;
    anchors = { prefixes, tail, longest: format.maxLength, beforeUnderscore };
    anchorsByFormat.set(format, anchors);
  }
  return anchors;
}

/**
 * Finds this deployment's keys in a stream of bytes, chunk by chunk, in one pass: a key that spans
 * two chunks is found once. Every prefix ends with `_` (the format requires it), so the finder
 * jumps from one `_` to the next (a native search) and compares the prefixes that would end there,
 * backwards; only a prefix followed by a full run of base62 characters is parsed, and kept when
 * its checksum holds. No regular expression runs over the input: each `_` costs at most the
 * prefixes' total length, each candidate the key's length, so the work is linear in the input
 * whatever it holds (`stats.steps` counts it).
 */
export class KeyFinder {
  readonly #format: KeyFormat;
  readonly #anchors: Anchors;
  readonly #stats: ScanStats;
  /** Bytes of the previous chunk that may begin a key not yet complete. */
  #carry: Uint8Array = new Uint8Array(0);
  /** Offset in the whole input of `#carry[0]`. */
  #carryOffset = 0;
  /** Lines counted up to `#countedTo` (an offset in the whole input). */
  #line = 1;
  #lineStart = 0;
  #countedTo = 0;

  constructor(format: KeyFormat, stats: ScanStats = { steps: 0 }) {
    this.#format = format;
    this.#anchors = anchorsOf(format);
    this.#stats = stats;
  }

  /** The keys that begin in what has been pushed so far and end in it. */
  push(chunk: Uint8Array): FoundKey[] {
    const window = this.#carry.length === 0 ? chunk : concat(this.#carry, chunk);
    // A key starting past `final` might end in the next chunk: those starts wait for it.
    const final = Math.max(0, window.length - (this.#anchors.longest - 1));
    const found = this.#scan(window, final);
    // The lines of the bytes let go of, which later keys' line numbers need.
    this.#countLines(window, final);
    this.#carryOffset += final;
    this.#carry = window.slice(final);
    return found;
  }

  /**
   * The keys left once the input has ended, with its last chunk if one is given: a whole input
   * given here at once costs no line counting but up to the keys found.
   */
  end(chunk?: Uint8Array): FoundKey[] {
    const window =
      chunk === undefined
        ? this.#carry
        : this.#carry.length === 0
          ? chunk
          : concat(this.#carry, chunk);
    const found = this.#scan(window, window.length);
    this.#carryOffset += window.length;
    this.#carry = new Uint8Array(0);
    return found;
  }

  /** Keys that start before `final` in `window` (whose first byte is at `#carryOffset`). */
  #scan(window: Uint8Array, final: number): FoundKey[] {
    const { prefixes, tail, beforeUnderscore } = this.#anchors;
    const found: FoundKey[] = [];
    const stats = this.#stats;
    let from = 0;
    while (from < window.length) {
      const underscore = window.indexOf(UNDERSCORE, from);
      // The native search passes over each byte once: counted as one step a byte.
      stats.steps += (underscore === -1 ? window.length : underscore + 1) - from;
      if (underscore === -1) break;
      from = underscore + 1;
      // Most `_` in text end no prefix: the byte before it tells at once.
      if (underscore === 0 || beforeUnderscore[window[underscore - 1]!] === 0) continue;
      for (let p = 0; p < prefixes.length; p++) {
        const prefix = prefixes[p]!;
        const start = underscore + 1 - prefix.length;
        if (start < 0 || start >= final) continue;
        if (!endsWith(window, underscore, prefix, stats)) continue;
        const end = start + prefix.length + tail;
        if (end > window.length || !isBase62(window, start + prefix.length, end, stats)) continue;
        const parsed = this.#format.parse(latin1(window, start, end));
        stats.steps += end - start;
        if (!parsed) continue;
        found.push(this.#found(window, start, parsed));
        // A key holds no `_` after its prefix: the next one starts past it.
        from = end;
        break;
      }
    }
    return found;
  }

  #found(
    window: Uint8Array,
    start: number,
    parsed: NonNullable<ReturnType<KeyFormat['parse']>>,
  ): FoundKey {
    this.#countLines(window, start);
    const offset = this.#carryOffset + start;
    const key = {
      offset,
      line: this.#line,
      column: offset - this.#lineStart + 1,
      start: parsed.start,
      type: parsed.type,
      environment: parsed.environment,
    } as FoundKey;
    Object.defineProperty(key, 'secret', { value: parsed.secret, enumerable: false });
    return key;
  }

  /** Counts the newlines of `window` before `to`, from where counting stopped. */
  #countLines(window: Uint8Array, to: number): void {
    const base = this.#carryOffset;
    let at = this.#countedTo - base;
    if (at >= to) return;
    // Searched within [at, to) only: a search to the end of the window for each key would be quadratic.
    const region = window.subarray(0, to);
    for (;;) {
      const newline = region.indexOf(NEWLINE, at);
      this.#stats.steps += (newline === -1 ? to : newline + 1) - at;
      if (newline === -1) break;
      this.#line++;
      this.#lineStart = base + newline + 1;
      at = newline + 1;
    }
    this.#countedTo = base + to;
  }
}

/** Every key of `format` in `input` (text, or bytes such as a file's), in order of appearance. */
export function findKeys(
  input: string | Uint8Array,
  format: KeyFormat,
  stats?: ScanStats,
): FoundKey[] {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  return new KeyFinder(format, stats).end(bytes);
}

function endsWith(bytes: Uint8Array, last: number, prefix: Uint8Array, stats: ScanStats): boolean {
  // The `_` matched already: compare the rest backwards, so most misses cost one step.
  for (let i = prefix.length - 2, at = last - 1; i >= 0; i--, at--) {
    stats.steps++;
    if (bytes[at] !== prefix[i]) return false;
  }
  return true;
}

function isBase62(bytes: Uint8Array, from: number, to: number, stats: ScanStats): boolean {
  for (let i = from; i < to; i++) {
    stats.steps++;
    if (BASE62_BYTE[bytes[i]!] === 0) return false;
  }
  return true;
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}
