import { type Failure, failure, KeygateConfigError, KeygateError } from './errors.js';
import { compileResource, type ScopeSpec, scopeRequirement } from './guard.js';
import { createKeygate, type Keygate } from './keygate.js';
import type { KeygateOptions } from './options.js';
import type {
  Authentication,
  KeyEnvironment,
  KeygateRequest,
  KeyType,
  ScopeRequirement,
} from './types.js';

/** What every adapter needs from the core besides the pipeline: options, headers, guards. */

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
      'CONFLICTING_OPTIONS',
      'pass either { keygate } (a createKeygate() instance) or keygate options, not both',
    );
  }
  return input.keygate;
}

/**
 * Node's request headers as the core's header reader, repeated fields joined as Fetch `Headers`
 * joins them: from `rawHeaders` (what the adapters pass: read where they lie, with no object built
 * per request) or from `headersDistinct`. (`headers` keeps only the first of two `Authorization`
 * fields, so a request Hono refuses would pass on Express and Koa.)
 */
export function nodeHeaders(
  headers: readonly string[] | NodeJS.Dict<string | string[]>,
): KeygateRequest['headers'] {
  if (isRawHeaders(headers)) return new RawHeaders(headers);
  return {
    get(name) {
      const value = headers[name];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(separator(name)) : value;
    },
  };
}

const isRawHeaders = (headers: unknown): headers is readonly string[] => Array.isArray(headers);
const separator = (name: string) => (name === 'cookie' ? '; ' : ', ');

/** `rawHeaders` is `[name, value, name, value, ...]`, names as sent; `get` takes a lower-case name. */
class RawHeaders {
  readonly #raw: readonly string[];
  constructor(raw: readonly string[]) {
    this.#raw = raw;
  }

  get(name: string): string | null {
    const raw = this.#raw;
    let value: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const field = raw[i]!;
      if (field.length !== name.length || field.toLowerCase() !== name) continue;
      value = value === null ? raw[i + 1]! : value + separator(name) + raw[i + 1]!;
    }
    return value;
  }
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
  /**
   * The failure of a request against the guard, or `null` when it passes: `AUTH_REQUIRED` when no
   * authentication ran before it (the route was mounted outside `apiKeyAuth`).
   */
  check(
    auth: Authentication | undefined,
    ctx: Ctx,
    param: (name: string) => string | undefined,
  ): Failure | null;
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
      'INVALID_OPTION',
      'resource must be a template string or a function',
    );
  }
  const template = typeof resource === 'string' ? compileResource(resource) : null;
  const resourceOf = (ctx: Ctx, param: (name: string) => string | undefined) => {
    if (resource === undefined) return undefined;
    if (template) return template(param);
    return (resource as (ctx: Ctx) => string | null | undefined)(ctx) || null;
  };
  return {
    requirement,
    resource: resourceOf,
    check(auth, ctx, param) {
      if (!auth) {
        return failure(
          new KeygateError('AUTH_REQUIRED', { reason: 'no_authentication_middleware' }),
        );
      }
      return auth.keygate.authorize(auth, requirement, resourceOf(ctx, param));
    },
  };
}
