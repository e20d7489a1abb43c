import { BodyTooLargeError, KeygateConfigError, type KeygateError } from './errors.js';
import {
  resolveResource,
  type ScopeRequirement,
  type ScopeSpec,
  scopeRequirement,
} from './guard.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import type { Headers, KeyEnvironment, KeygateRequest, KeyType } from './types.js';

/** What every adapter needs to turn the core's decisions into responses. */

export function isKeygate(value: unknown): value is Keygate {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Keygate).authenticate === 'function' &&
    typeof (value as Keygate).authorize === 'function'
  );
}

/** What an adapter's factories take: a shared instance, or options for a new one. */
export type KeygateInput = { keygate: Keygate } | KeygateOptions;

/** Accepts a shared instance (so the router and middleware see the same keys) or options for a new one. */
export function toKeygate(input: KeygateInput = {}): Keygate {
  if (!('keygate' in input)) return createKeygate(input);
  if (!isKeygate(input.keygate) || Object.keys(input).length > 1) {
    throw new KeygateConfigError(
      'INVALID_OPTIONS',
      'pass either { keygate } or keygate options, not both',
    );
  }
  return input.keygate;
}

/**
 * Node's `headersDistinct` (Express, Koa) as the core's header reader, repeated fields joined as
 * Fetch `Headers` joins them. (`headers` keeps only the first of two `Authorization` fields, so a
 * request Hono refuses would pass on Express and Koa.)
 */
export function nodeHeaders(headers: NodeJS.Dict<string | string[]>): KeygateRequest['headers'] {
  return {
    get(name) {
      const value = headers[name];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(name === 'cookie' ? '; ' : ', ') : value;
    },
  };
}

export interface RenderedFailure {
  status: number;
  body: { success: false; error: string; code: string };
  headers: Headers;
}

/** Status, JSON body and headers (`WWW-Authenticate`, `Retry-After`, rate-limit headers) of a failure. */
export function renderFailure(error: KeygateError, headers: Headers): RenderedFailure {
  const all: Headers = { ...headers };
  if (error.wwwAuthenticate) all['WWW-Authenticate'] = error.wwwAuthenticate;
  return { status: error.status, body: error.toJSON(), headers: all };
}

export interface GuardOptions<Ctx> {
  /**
   * The resource the route acts on: a template filled from route params (`'website:{websiteId}'`)
   * or a function of the framework's context. Default: none (scopes only).
   */
  resource?: string | ((ctx: Ctx) => string | null | undefined);
  /** Only this key type passes; e.g. `'secret'` marks a secret-only route. Default: any. */
  keyType?: KeyType;
  /**
   * Only keys of these environments pass, e.g. `['live']` so test keys never reach live data
   * (403 `FORBIDDEN` otherwise). Default: both.
   */
  environments?: readonly KeyEnvironment[];
}

export interface PreparedGuard<Ctx> {
  requirement: ScopeRequirement;
  /** The resource for this request: `undefined` if the route names none, `null` if the request lacks it. */
  resource(ctx: Ctx, param: (name: string) => string | undefined): string | null | undefined;
}

/** Validates a guard when the route is declared, and returns how to evaluate it per request. */
export function prepareGuard<Ctx>(
  spec: ScopeSpec,
  options: GuardOptions<Ctx> = {},
): PreparedGuard<Ctx> {
  const requirement = scopeRequirement(spec, {
    keyType: options.keyType,
    environments: options.environments,
  });
  const { resource } = options;
  if (resource !== undefined && typeof resource !== 'string' && typeof resource !== 'function') {
    throw new KeygateConfigError(
      'INVALID_RESOURCE',
      'resource must be a template string or a function',
    );
  }
  return {
    requirement,
    resource(ctx, param) {
      if (resource === undefined) return undefined;
      if (typeof resource === 'string') return resolveResource(resource, param);
      return resource(ctx) || null;
    },
  };
}

/**
 * Reads a request body as text, refusing more than `limit` bytes as soon as they arrive, chunked
 * or not: a Node request (Express, Koa) or a Fetch `Request#body` stream (Hono).
 */
export async function readBody(
  stream: AsyncIterable<Uint8Array | string> | null,
  declaredLength: string | null | undefined,
  limit: number,
): Promise<string> {
  if (declaredLength != null && Number(declaredLength) > limit) throw bodyTooLarge();
  if (stream === null) return '';
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    const buffer =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += buffer.length;
    if (size > limit) throw bodyTooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function bodyTooLarge(): BodyTooLargeError {
  return new BodyTooLargeError();
}
