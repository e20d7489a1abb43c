import { KeygateConfigError, KeygateError } from './errors.js';
import type { KeygateRequest } from './types.js';

export type KeySource = 'authorization' | 'header' | 'query';

export const ALL_SOURCES: readonly KeySource[] = ['authorization', 'header', 'query'];

export interface ExtractOptions {
  sources: readonly KeySource[];
  headerName: string;
  queryParam: string;
}

export type Extraction =
  | { kind: 'none' }
  | { kind: 'key'; key: string; source: KeySource }
  | { kind: 'error'; error: KeygateError };

const BEARER = /^bearer(?:[ \t]+(.*))?$/is;
// Printable ASCII only: anything else cannot be a key and is refused before any I/O.
const PRINTABLE = /^[\x21-\x7e]*$/;
const MAX_CREDENTIAL_LENGTH = 1024;

export function validateSources(sources: readonly string[]): readonly KeySource[] {
  if (sources.length === 0) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'sources: at least one key source must be enabled',
    );
  }
  for (const source of sources) {
    if (!ALL_SOURCES.includes(source as KeySource)) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `sources: unknown key source ${JSON.stringify(source)}; expected one of ${ALL_SOURCES.join(', ')}`,
      );
    }
  }
  return sources as KeySource[];
}

const NONE: Extraction = { kind: 'none' };

function invalidRequest(message: string, reason: string): Extraction {
  return { kind: 'error', error: new KeygateError('INVALID_REQUEST', { message, reason }) };
}

/** Reads the credential from the enabled sources, in order, refusing conflicts and unusable bytes. */
export function extractKey(req: KeygateRequest, options: ExtractOptions): Extraction {
  let found: { kind: 'key'; key: string; source: KeySource } | undefined;
  let conflicting = false;
  for (const source of options.sources) {
    let value: string | null = null;
    if (source === 'authorization') {
      const header = req.headers.get('authorization');
      if (header === null) continue;
      const match = BEARER.exec(trimSpace(header));
      // Other schemes (Basic, Digest, ...) are not ours to read.
      if (!match) continue;
      value = trimSpace(match[1] ?? '');
    } else if (source === 'header') {
      value = req.headers.get(options.headerName);
      if (value === null) continue;
      value = trimSpace(value);
    } else {
      const params = queryParams(req.url);
      if (params === null) continue;
      const bracketed = [...params.keys()].some((name) =>
        name.startsWith(`${options.queryParam}[`),
      );
      const values = params.getAll(options.queryParam);
      if (bracketed || values.length > 1) {
        return invalidRequest(
          `The ${options.queryParam} query parameter must be given once, as a plain value`,
          'query_array',
        );
      }
      if (values.length === 0) continue;
      value = trimSpace(values[0]!);
    }
    // An empty credential (`Bearer `, `x-api-key:`) is no credential: it neither fails nor conflicts.
    if (value === '') continue;
    if (value.length > MAX_CREDENTIAL_LENGTH) {
      return invalidRequest('The API key is longer than an API key can be', 'encoding');
    }
    if (!PRINTABLE.test(value)) {
      return invalidRequest('The API key contains characters an API key cannot have', 'encoding');
    }
    if (found === undefined) found = { kind: 'key', key: value, source };
    else if (value !== found.key) conflicting = true;
  }
  if (conflicting) {
    return invalidRequest(
      'Different API keys were sent in more than one place',
      'conflicting_keys',
    );
  }
  return found ?? NONE;
}

/**
 * Trims spaces and tabs only: `String#trim` would also drop Unicode spaces (NBSP, U+2028, ...),
 * letting bytes an API key cannot hold pass as a valid key.
 */
function trimSpace(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

function queryParams(url: string): URLSearchParams | null {
  const q = url.indexOf('?');
  if (q === -1) return null;
  const hash = url.indexOf('#', q);
  return new URLSearchParams(url.slice(q + 1, hash === -1 ? undefined : hash));
}

/**
 * The request path, without the query string, for restrictions and audit records. An absolute
 * URL is read as a Fetch `Request#url` is written (serialized: normalised, its path starting at
 * the first `/` after `scheme://`), without parsing it again on every request.
 */
export function pathOf(url: string): string {
  let path = url;
  if (!url.startsWith('/')) {
    const scheme = url.startsWith('https://') ? 8 : url.startsWith('http://') ? 7 : -1;
    const start = scheme === -1 ? -1 : url.indexOf('/', scheme);
    if (start !== -1) path = url.slice(start);
    else {
      try {
        path = new URL(url).pathname;
      } catch {
        path = '/';
      }
    }
  }
  const cut = path.search(/[?#]/);
  return cut === -1 ? path : path.slice(0, cut);
}
