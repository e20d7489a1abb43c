import type { AuditLogOptions } from './audit.js';
import { MemoryAuditSink } from './audit.js';
import type { VerificationCacheOptions } from './cache.js';
import { VerificationCache } from './cache.js';
import type { CircuitRetry } from './circuit.js';
import { normaliseOrigin } from './csrf.js';
import { KeygateConfigError } from './errors.js';
import { ALL_SOURCES, type ExtractOptions, type KeySource, validateSources } from './extract.js';
import {
  createKeyFormat,
  createKeyHasher,
  type KeyFormat,
  type KeyHasher,
  type KeyPrefixes,
} from './key-format.js';
import { type LeakOptions, type LeakPolicy, resolveLeakPolicy } from './leaks.js';
import {
  type AuthFailureLimit,
  LocalInvalidationBus,
  MemoryAuthFailureGuard,
} from './local-backends.js';
import type { KnownKey } from './look-up.js';
import { MemoryKeyStore } from './memory-store.js';
import {
  DEFAULT_TIERS,
  MemoryRateLimiter,
  type RateLimitTier,
  type RateLimitTiers,
  validateTier,
} from './rate-limit.js';
import type {
  AuditReader,
  AuditSink,
  AuthFailureGuard,
  InvalidationBus,
  KeyEnvironment,
  KeyStore,
  RateLimiter,
  SessionResolver,
  SessionStore,
} from './types.js';
import type { WebhookRegistry } from './webhooks.js';

/** How the key-management page's sessions are kept (see `KeygateOptions.pageSessions`). */
export interface PageSessionOptions {
  /** Where sessions live. Default: the key store's own (`store.sessions`), so every instance sharing the keys shares them. */
  store?: SessionStore;
  /** How long a session lasts from sign-in however busy it is, in seconds. Default 28,800 (8 hours). */
  ttlSeconds?: number;
  /** How long a session lasts unused, in seconds. Default 1,800 (30 minutes). */
  idleSeconds?: number;
  /** Most sessions of one key; a sign-in past it ends that key's oldest. Default 10. */
  maxPerKey?: number;
}

/** Page sessions with their defaults applied: what `createKeygate` keeps. */
export interface PageSessionConfig {
  store: SessionStore;
  ttlSeconds: number;
  idleSeconds: number;
  maxPerKey: number;
}

export interface KeygateOptions {
  /** Where keys live. Default: an in-memory store (single process, lost on restart). */
  store?: KeyStore;
  /** Per-key rate limiter, or `false` to add no limits. Default: in-memory limiter. */
  limiter?: RateLimiter | false;
  /** Limits per key type; each field overrides the default tier (public 100/s, burst 1,000, 1M/day; secret 1,000/s, burst 10,000, 10M/day). */
  tiers?: { secret?: Partial<RateLimitTier>; public?: Partial<RateLimitTier> };
  /** Per-IP limit on failed authentications, or `false` to disable. Default: 20 per minute, then blocked 5 minutes. */
  authFailureLimit?: AuthFailureLimit | false;
  /** Backend for the failed-authentication counter. Default: in-memory, built from `authFailureLimit`. */
  authFailureGuard?: AuthFailureGuard;
  /** Carries cache invalidations to other instances. Default: this process only. */
  invalidation?: InvalidationBus;
  /** Where audit events go. Default: a bounded in-memory sink. */
  auditSinks?: AuditSink[];
  /** Where `GET /v1/api-keys/:id/events` and `/usage`, `keygate audit`, `keygate usage` and keys' `lastUsedAt` read from. Default: the first sink that can be read. */
  auditReader?: AuditReader;
  /**
   * Audit queue tuning. Default: batches of 1,000, flushed every 200 ms, 1,000,000 events held,
   * `'drop-oldest'` past that; up to 100,000 usage rows waiting; up to 100,000 events and usage
   * rows held for a sink that is down; `close()` waits 10 s at most.
   */
  auditQueue?: Pick<
    AuditLogOptions,
    | 'batchSize'
    | 'flushIntervalMs'
    | 'maxQueue'
    | 'onQueueFull'
    | 'closeTimeoutMs'
    | 'maxUsageRows'
    | 'maxHeldPerSink'
  >;
  /**
   * While the key store or an audit sink is down (a call timed out or lost its connection), no
   * call waits on it: one background probe checks it about `retryMs` later, then at doubling
   * intervals up to `maxRetryMs`, jittered. Default `{ retryMs: 500, maxRetryMs: 5000 }`.
   */
  circuitBreaker?: CircuitRetry;
  /** Audit every guard decision: a failed check as a `scope.checked`/`resource.checked` event, a passed one counted as usage. Default `true`. */
  auditScopeChecks?: boolean;
  /** Where a key is looked for, in order. Default `['authorization', 'header', 'query']`. */
  sources?: readonly KeySource[];
  /** Header read by the `header` source. Default `x-api-key`. */
  headerName?: string;
  /** Query parameter read by the `query` source. Default `api_key`. */
  queryParam?: string;
  /** Key prefixes by type and environment. Default `sk_live_`, `sk_test_`, `pk_live_`, `pk_test_`. */
  prefixes?: KeyPrefixes;
  /** Server-side secret mixed into digests (HMAC-SHA256); at least 16 characters. Default: none (SHA-256). */
  pepper?: string;
  /** Environments this app accepts; a key from another is invalid. Default `['live', 'test']`. */
  environments?: readonly KeyEnvironment[];
  /** Scopes a public key may hold. Default `['track:events', 'read:config']`. */
  publicScopes?: readonly string[];
  /** Resolves a browser session of the app's own (its users' sign-in) when no key is sent. Default: none. */
  session?: SessionResolver;
  /**
   * The key-management page's sessions: a browser signed in with an admin key, acting with that
   * key's current record on every request. `false`: none. Default: kept in the key store's
   * `sessions` (`MemoryKeyStore`, `PostgresKeyStore`; off for a store without), 8 hours, 30
   * minutes idle, 10 per key.
   */
  pageSessions?: PageSessionOptions | false;
  /** Verified-key cache, or `false` to ask the store on every request. Default: 10,000 entries, 30 s TTL. */
  cache?: VerificationCacheOptions | false;
  /** Owner given to keys created without one. Default `org_default`. */
  defaultOwnerId?: string;
  /** Scope that lets a key use the management router. Default `manage:keys`. */
  adminScope?: string;
  /**
   * Origins besides the request's own from which a browser session may change keys (e.g. a
   * dashboard on another host), as `https://host[:port]`. Default: none.
   */
  trustedOrigins?: readonly string[];
  /** Where operational warnings go. Default `console`. */
  logger?: Pick<Console, 'warn' | 'error'>;
  /**
   * What a report that a key leaked does (`POST /v1/api-keys/leaks`, `keygate scan --report`):
   * containment per environment, the quarantine's look-back, GitHub's signing keys. Default:
   * secret keys of both environments are revoked; no GitHub key (signed reports refused).
   */
  leaks?: LeakOptions;
  /**
   * Owners' webhook endpoints and their deliveries, for the router's `/webhooks` routes (e.g.
   * `PostgresWebhooks` of `@keygate/postgres`); `close()` closes it. Default: none (the routes answer 404).
   */
  webhooks?: WebhookRegistry;
}

/** Every option, with its default applied and checked: what `createKeygate` is built from. */
export interface KeygateConfig {
  logger: Pick<Console, 'warn' | 'error'>;
  format: KeyFormat;
  hasher: KeyHasher;
  extract: ExtractOptions;
  environments: readonly KeyEnvironment[];
  tiers: RateLimitTiers;
  store: KeyStore;
  limiter: RateLimiter | null;
  failureGuard: AuthFailureGuard | null;
  cache: VerificationCache<KnownKey> | null;
  invalidation: InvalidationBus;
  sinks: AuditSink[];
  auditQueue: NonNullable<KeygateOptions['auditQueue']>;
  circuitBreaker: Required<CircuitRetry>;
  auditReader: AuditReader | null;
  auditScopeChecks: boolean;
  session: SessionResolver | null;
  pageSessions: PageSessionConfig | null;
  publicScopes: readonly string[];
  defaultOwnerId: string;
  adminScope: string;
  trustedOrigins: ReadonlySet<string>;
  leaks: LeakPolicy;
  webhooks: WebhookRegistry | null;
}

/** Every option name, so a misspelt one is refused instead of silently ignored. */
const OPTION_NAMES: { readonly [K in keyof Required<KeygateOptions>]: true } = {
  store: true,
  limiter: true,
  tiers: true,
  authFailureLimit: true,
  authFailureGuard: true,
  invalidation: true,
  auditSinks: true,
  auditReader: true,
  auditQueue: true,
  circuitBreaker: true,
  auditScopeChecks: true,
  sources: true,
  headerName: true,
  queryParam: true,
  prefixes: true,
  pepper: true,
  environments: true,
  publicScopes: true,
  session: true,
  pageSessions: true,
  cache: true,
  defaultOwnerId: true,
  adminScope: true,
  trustedOrigins: true,
  logger: true,
  leaks: true,
  webhooks: true,
};

/**
 * Checks `options` and applies the defaults, building the in-memory backends for what is not
 * given. Throws a `KeygateConfigError` for an unknown option (`UNKNOWN_OPTION`) or a value that
 * cannot work (`INVALID_OPTION`), so a mistake surfaces when the app starts, never per request.
 */
export function resolveOptions(options: KeygateOptions = {}): KeygateConfig {
  const unknown = Object.keys(options).filter((name) => !Object.hasOwn(OPTION_NAMES, name));
  if (unknown.length > 0) {
    throw new KeygateConfigError(
      'UNKNOWN_OPTION',
      `createKeygate does not take ${unknown.map((name) => JSON.stringify(name)).join(', ')}`,
    );
  }
  const environments = options.environments ?? ['live', 'test'];
  if (environments.length === 0 || environments.some((e) => e !== 'live' && e !== 'test')) {
    throw new KeygateConfigError('INVALID_OPTION', `environments must list 'live' and/or 'test'`);
  }
  const sinks = options.auditSinks ?? [new MemoryAuditSink()];
  const store = options.store ?? new MemoryKeyStore();
  return {
    logger: options.logger ?? console,
    format: createKeyFormat(options.prefixes),
    hasher: createKeyHasher(options.pepper),
    extract: {
      sources: validateSources(options.sources ?? ALL_SOURCES),
      headerName: (options.headerName ?? 'x-api-key').toLowerCase(),
      queryParam: options.queryParam ?? 'api_key',
    },
    environments,
    tiers: resolveTiers(options.tiers),
    store,
    limiter: options.limiter === false ? null : (options.limiter ?? new MemoryRateLimiter()),
    failureGuard:
      options.authFailureLimit === false
        ? null
        : (options.authFailureGuard ?? new MemoryAuthFailureGuard(options.authFailureLimit || {})),
    cache: options.cache === false ? null : new VerificationCache(options.cache),
    invalidation: options.invalidation ?? new LocalInvalidationBus(),
    sinks,
    auditQueue: options.auditQueue ?? {},
    circuitBreaker: resolveCircuitBreaker(options.circuitBreaker),
    auditReader: options.auditReader ?? sinks.find(isReader) ?? null,
    auditScopeChecks: options.auditScopeChecks ?? true,
    session: options.session ?? null,
    pageSessions: resolvePageSessions(options.pageSessions, store),
    publicScopes: options.publicScopes ?? ['track:events', 'read:config'],
    defaultOwnerId: options.defaultOwnerId ?? 'org_default',
    adminScope: options.adminScope ?? 'manage:keys',
    trustedOrigins: resolveOrigins(options.trustedOrigins ?? []),
    leaks: resolveLeakPolicy(options.leaks),
    webhooks: options.webhooks ?? null,
  };
}

function resolveCircuitBreaker(retry: CircuitRetry = {}): Required<CircuitRetry> {
  const { retryMs = 500, maxRetryMs = 5_000 } = retry;
  for (const [name, value] of Object.entries({ retryMs, maxRetryMs })) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `circuitBreaker.${name} must be a positive number of milliseconds (got ${String(value)})`,
      );
    }
  }
  if (maxRetryMs < retryMs) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `circuitBreaker.maxRetryMs (${maxRetryMs}) must not be less than retryMs (${retryMs})`,
    );
  }
  return { retryMs, maxRetryMs };
}

function resolveTiers(tiers: KeygateOptions['tiers']): RateLimitTiers {
  const resolved = {
    secret: { ...DEFAULT_TIERS.secret, ...tiers?.secret },
    public: { ...DEFAULT_TIERS.public, ...tiers?.public },
  };
  validateTier(resolved.secret, 'tiers.secret');
  validateTier(resolved.public, 'tiers.public');
  return resolved;
}

const PAGE_SESSION_BOUNDS = {
  ttlSeconds: { min: 60, max: 30 * 86_400, fallback: 8 * 3_600 },
  idleSeconds: { min: 60, max: 30 * 86_400, fallback: 30 * 60 },
  maxPerKey: { min: 1, max: 1_000, fallback: 10 },
} as const;

function resolvePageSessions(
  options: PageSessionOptions | false | undefined,
  keys: KeyStore,
): PageSessionConfig | null {
  if (options === false) return null;
  const store = options?.store ?? keys.sessions;
  if (!store) {
    if (options === undefined) return null;
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'pageSessions needs a store: the key store keeps no sessions, so pass pageSessions.store',
    );
  }
  const value = (name: keyof typeof PAGE_SESSION_BOUNDS): number => {
    const { min, max, fallback } = PAGE_SESSION_BOUNDS[name];
    const given = options?.[name] ?? fallback;
    if (!Number.isInteger(given) || given < min || given > max) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `pageSessions.${name} must be a whole number from ${min} to ${max}`,
      );
    }
    return given;
  };
  return {
    store,
    ttlSeconds: value('ttlSeconds'),
    idleSeconds: value('idleSeconds'),
    maxPerKey: value('maxPerKey'),
  };
}

function resolveOrigins(origins: readonly string[]): ReadonlySet<string> {
  return new Set(
    origins.map((origin) => {
      const normalised = normaliseOrigin(origin);
      if (normalised === null || normalised !== origin.replace(/\/$/, '').toLowerCase()) {
        throw new KeygateConfigError(
          'INVALID_OPTION',
          `trustedOrigins must hold origins like https://app.example.com (got ${JSON.stringify(origin)})`,
        );
      }
      return normalised;
    }),
  );
}

function isReader(sink: AuditSink): sink is AuditSink & AuditReader {
  return typeof (sink as Partial<AuditReader>).query === 'function';
}
