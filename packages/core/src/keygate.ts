import { randomUUID } from 'node:crypto';
import { AuditLog, type AuditLogOptions, MemoryAuditSink } from './audit.js';
import { failureSubject } from './auth-failures.js';
import { VerificationCache, type VerificationCacheOptions } from './cache.js';
import { normaliseOrigin } from './csrf.js';
import { KeygateConfigError, KeygateError } from './errors.js';
import { ALL_SOURCES, extractKey, type KeySource, pathOf, validateSources } from './extract.js';
import { checkRequirement, type ScopeRequirement } from './guard.js';
import { createKeyFormat, createKeyHasher, type KeyPrefixes } from './key-format.js';
import { KeyService, toApiKey } from './keys.js';
import {
  type AuthFailureLimit,
  LocalInvalidationBus,
  MemoryAuthFailureGuard,
} from './local-backends.js';
import { MemoryKeyStore } from './memory-store.js';
import {
  DEFAULT_TIERS,
  MemoryRateLimiter,
  policiesFor,
  type RateLimitTier,
  type RateLimitTiers,
  rateLimitHeaders,
  validateTier,
} from './rate-limit.js';
import { checkRestrictions } from './restrictions.js';
import type {
  ApiKeyRecord,
  AuditContext,
  AuditReader,
  AuditSink,
  AuthFailureGuard,
  Decision,
  Headers,
  InvalidationBus,
  KeyEnvironment,
  KeygateRequest,
  KeyStore,
  Principal,
  RateLimiter,
  SessionResolver,
} from './types.js';

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
  /** Where `GET /v1/api-keys/:id/events` and `/usage`, `keygate audit` and `keygate usage` read from. Default: the first sink that can be read. */
  auditReader?: AuditReader;
  /**
   * Audit queue tuning. Default: batches of 1,000, flushed every 200 ms, 1,000,000 events held,
   * `'drop-oldest'` past that; up to 100,000 usage rows waiting.
   */
  auditQueue?: Pick<
    AuditLogOptions,
    'batchSize' | 'flushIntervalMs' | 'maxQueue' | 'onQueueFull' | 'closeTimeoutMs' | 'maxUsageRows'
  >;
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
  /** Resolves a browser session when no key is sent. Default: none. */
  session?: SessionResolver;
  /** Verified-key cache, or `false` to ask the store on every request. Default: 10,000 entries, 30 s TTL. */
  cache?: VerificationCacheOptions | false;
  /** Least time between two `last_used_at` writes for one key, in ms. Default 60,000. */
  lastUsedIntervalMs?: number;
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
}

export interface Keygate {
  /** Identifies the caller: a key (or session) with its rate limit applied, or the failure to render. */
  authenticate(req: KeygateRequest): Promise<Decision>;
  /**
   * Checks a principal against a route's requirement. `resource` is `undefined` when the route
   * names none and `null` when it names one the request does not carry.
   */
  authorize(
    principal: Principal | undefined,
    requirement: ScopeRequirement,
    req: KeygateRequest,
    resource?: string | null,
  ): Decision;
  /** The audit fields of a request (IP, user agent, method, path, request id), shared by all its events. */
  auditContext(req: KeygateRequest): AuditContext;
  readonly keys: KeyService;
  readonly audit: AuditLog;
  readonly auditReader: AuditReader | null;
  readonly adminScope: string;
  /** Scopes a public key may hold. */
  readonly publicScopes: readonly string[];
  /** Environments this app accepts keys from. */
  readonly environments: readonly KeyEnvironment[];
  /** Whether browser sessions can authenticate (a session resolver is configured). */
  readonly acceptsSessions: boolean;
  /** Origins, besides a request's own, from which a session may change keys (normalised). */
  readonly trustedOrigins: ReadonlySet<string>;
  readonly logger: Pick<Console, 'warn' | 'error'>;
  /** Flushes the audit trail and last-used times, and closes every backend. */
  close(): Promise<void>;
}

/** What an audit record says about the key (or session) involved. */
interface AuditSubject {
  id: string | null;
  start: string | null;
  ownerId: string | null;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const MAX_BLOCKED_IPS = 100_000;

function resolveTiers(tiers: KeygateOptions['tiers']): RateLimitTiers {
  const resolved = {
    secret: { ...DEFAULT_TIERS.secret, ...tiers?.secret },
    public: { ...DEFAULT_TIERS.public, ...tiers?.public },
  };
  validateTier(resolved.secret, 'tiers.secret');
  validateTier(resolved.public, 'tiers.public');
  return resolved;
}

function resolveOrigins(origins: readonly string[]): ReadonlySet<string> {
  return new Set(
    origins.map((origin) => {
      const normalised = normaliseOrigin(origin);
      if (normalised === null || normalised !== origin.replace(/\/$/, '').toLowerCase()) {
        throw new KeygateConfigError(
          'INVALID_ORIGIN',
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

export function createKeygate(options: KeygateOptions = {}): Keygate {
  const logger = options.logger ?? console;
  const format = createKeyFormat(options.prefixes);
  const hasher = createKeyHasher(options.pepper);
  const sources = validateSources(options.sources ?? ALL_SOURCES);
  const headerName = (options.headerName ?? 'x-api-key').toLowerCase();
  const queryParam = options.queryParam ?? 'api_key';
  const environments = options.environments ?? ['live', 'test'];
  if (environments.length === 0 || environments.some((e) => e !== 'live' && e !== 'test')) {
    throw new KeygateConfigError(
      'INVALID_ENVIRONMENT',
      `environments must list 'live' and/or 'test'`,
    );
  }
  const tiers = resolveTiers(options.tiers);
  const store: KeyStore = options.store ?? new MemoryKeyStore();
  const limiter: RateLimiter | null =
    options.limiter === false ? null : (options.limiter ?? new MemoryRateLimiter());
  const failureGuard: AuthFailureGuard | null =
    options.authFailureLimit === false
      ? null
      : (options.authFailureGuard ?? new MemoryAuthFailureGuard(options.authFailureLimit || {}));
  const cache = options.cache === false ? null : new VerificationCache(options.cache);
  const invalidation = options.invalidation ?? new LocalInvalidationBus();
  const sinks = options.auditSinks ?? [new MemoryAuditSink()];
  const audit = new AuditLog({ sinks, logger, ...options.auditQueue });
  const auditReader = options.auditReader ?? sinks.find(isReader) ?? null;
  const auditScopeChecks = options.auditScopeChecks ?? true;
  const lastUsedInterval = options.lastUsedIntervalMs ?? 60_000;
  const adminScope = options.adminScope ?? 'manage:keys';
  const publicScopes = options.publicScopes ?? ['track:events', 'read:config'];
  const trustedOrigins = resolveOrigins(options.trustedOrigins ?? []);

  const keys = new KeyService({
    store,
    format,
    hasher,
    cache,
    invalidation,
    audit,
    auditReader,
    publicScopes,
    defaultOwnerId: options.defaultOwnerId ?? 'org_default',
    tiers,
  });

  if (cache || limiter?.invalidate || limiter?.reset) {
    invalidation
      .subscribe(
        (keyId) => {
          cache?.invalidateKey(keyId);
          limiter?.invalidate?.(keyId);
        },
        () => {
          cache?.clear();
          limiter?.reset?.();
        },
      )
      .catch((error: unknown) =>
        logger.warn('[keygate] cache invalidation subscription failed:', error),
      );
  }

  const outage = new OutageLog(logger);
  const lastUsed = new LastUsedRecorder(store, lastUsedInterval, logger);
  // Clients the failure guard has blocked, so their further failures cost no guard call.
  const blockedUntil = new Map<string, number>();

  const lookup = (digest: string): Promise<ApiKeyRecord | null> =>
    cache
      ? cache.lookup(digest, (d) => store.findByDigest(d), Date.now())
      : store.findByDigest(digest);

  // Whether the store holds keys made before a pepper was configured (asked once).
  let legacyHeld: Promise<boolean> | undefined;
  const storeHoldsLegacyKeys = (): Promise<boolean> => {
    legacyHeld ??= (store.digestVersions?.() ?? Promise.resolve([0])).then(
      (versions) => versions.includes(0),
      () => {
        legacyHeld = undefined;
        return true;
      },
    );
    return legacyHeld;
  };

  /** The key a secret belongs to, by its digest, or by its unpeppered one for keys made before the pepper. */
  async function lookupKey(
    secret: string,
  ): Promise<{ record: ApiKeyRecord | null; digest: string }> {
    const digest = hasher.digest(secret);
    const record = await lookup(digest);
    if (record || !hasher.legacy || !(await storeHoldsLegacyKeys())) return { record, digest };
    const legacy = hasher.legacy.digest(secret);
    return { record: await lookup(legacy), digest: legacy };
  }

  // One request's authentication and guard checks share one audit context (and request id).
  const contexts = new WeakMap<KeygateRequest, AuditContext>();

  function contextOf(req: KeygateRequest): AuditContext {
    let ctx = contexts.get(req);
    if (!ctx) {
      ctx = buildContext(req);
      contexts.set(req, ctx);
    }
    return ctx;
  }

  // A key pasted into a path, user agent or request id is cut to its start before it is
  // recorded, and before the text is shortened (which could leave most of it).
  function buildContext(req: KeygateRequest): AuditContext {
    const requested = req.headers.get('x-request-id');
    const userAgent = req.headers.get('user-agent');
    return {
      ip: req.ip ?? null,
      userAgent: userAgent === null ? null : format.redact(userAgent).slice(0, 512),
      method: req.method,
      path: format.redact(pathOf(req.url)).slice(0, 2048),
      requestId: requested && REQUEST_ID.test(requested) ? format.redact(requested) : randomUUID(),
    };
  }

  /** A failed authentication, one event each (successes are counted: `audit.recordUse`). */
  function recordAuth(ctx: AuditContext, reason: string | null, key: AuditSubject | null): void {
    audit.record({
      action: 'auth.failed',
      outcome: 'failure',
      reason,
      keyId: key?.id ?? null,
      keyStart: key?.start ?? null,
      ownerId: key?.ownerId ?? null,
      actor: null,
      detail: null,
      ...ctx,
    });
  }

  /**
   * A failed authentication, counted by the brute-force guard: past its limit the client gets 429
   * instead. Only failures are refused so: a key that verifies is served whoever sends it.
   */
  async function failAttempt(
    ctx: AuditContext,
    error: KeygateError,
    key: AuditSubject | null,
  ): Promise<Decision> {
    recordAuth(ctx, error.reason, key);
    const subject = failureSubject(ctx.ip);
    if (!failureGuard || subject === null) return { ok: false, error, headers: {} };
    const until = blockedUntil.get(subject);
    if (until !== undefined) {
      if (until > Date.now()) return blocked((until - Date.now()) / 1000);
      blockedUntil.delete(subject);
    }
    let blockedFor = 0;
    try {
      blockedFor = await failureGuard.recordFailure(subject);
    } catch (guardError) {
      outage.warn('failed-authentication guard unavailable', guardError);
    }
    if (blockedFor > 0) {
      if (blockedUntil.size >= MAX_BLOCKED_IPS) blockedUntil.clear();
      blockedUntil.set(subject, Date.now() + blockedFor * 1000);
      return blocked(blockedFor);
    }
    return { ok: false, error, headers: {} };
  }

  function blocked(seconds: number): Decision {
    return {
      ok: false,
      error: new KeygateError('RATE_LIMITED', {
        message: 'Too many failed authentication attempts',
        reason: 'auth_failures',
      }),
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(seconds))) },
    };
  }

  async function limit(
    ctx: AuditContext,
    subject: string,
    tier: RateLimitTier,
    record: (AuditSubject & Pick<ApiKeyRecord, 'rateLimit'>) | null,
  ): Promise<{ headers: Headers; failure?: Decision }> {
    if (!limiter) return { headers: {} };
    let result: Awaited<ReturnType<RateLimiter['consume']>>;
    try {
      result = await limiter.consume(subject, policiesFor(tier, record?.rateLimit ?? null));
    } catch (error) {
      outage.warn('rate limiter unavailable', error);
      const failure = new KeygateError('SERVICE_UNAVAILABLE', { reason: 'limiter_unavailable' });
      recordAuth(ctx, failure.reason, record);
      return {
        headers: {},
        failure: { ok: false, error: failure, headers: { 'Retry-After': '1' } },
      };
    }
    const headers = rateLimitHeaders(result, Date.now());
    if (!result.allowed) {
      const error = new KeygateError('RATE_LIMITED', { reason: 'rate_limited' });
      recordAuth(ctx, error.reason, record);
      return { headers, failure: { ok: false, error, headers } };
    }
    return { headers };
  }

  async function authenticateSession(req: KeygateRequest, ctx: AuditContext): Promise<Decision> {
    const session = options.session ? await options.session(req) : null;
    if (!session) {
      const error = new KeygateError('AUTH_REQUIRED', { reason: 'missing' });
      recordAuth(ctx, error.reason, null);
      return { ok: false, error, headers: {} };
    }
    const who = { id: session.id, start: null, ownerId: session.ownerId };
    const limited = await limit(ctx, `session:${session.id}`, tiers.secret, {
      ...who,
      rateLimit: null,
    });
    if (limited.failure) return limited.failure;
    audit.recordUse('auth.succeeded', who, ctx, () => ({ via: 'session' }));
    return {
      ok: true,
      principal: {
        kind: 'session',
        id: session.id,
        ownerId: session.ownerId,
        scopes: session.scopes,
        resources: session.resources ?? null,
        type: 'secret',
        environment: environments.includes('live') ? 'live' : 'test',
        session,
      },
      headers: limited.headers,
    };
  }

  async function authenticate(req: KeygateRequest): Promise<Decision> {
    const ctx = contextOf(req);
    const extraction = extractKey(req, { sources, headerName, queryParam });
    if (extraction.kind === 'error') return failAttempt(ctx, extraction.error, null);
    if (extraction.kind === 'none') return authenticateSession(req, ctx);

    const parsed = format.parse(extraction.key);
    if (!parsed) {
      return failAttempt(ctx, new KeygateError('INVALID_API_KEY', { reason: 'malformed' }), null);
    }

    let record: ApiKeyRecord | null;
    let digest: string;
    try {
      ({ record, digest } = await lookupKey(parsed.secret));
    } catch (error) {
      outage.warn('key store unavailable', error);
      const failure = new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' });
      recordAuth(ctx, failure.reason, null);
      return { ok: false, error: failure, headers: { 'Retry-After': '1' } };
    }
    const shown = { id: record?.id ?? null, start: parsed.start, ownerId: record?.ownerId ?? null };
    const invalid = (reason: string) =>
      failAttempt(ctx, new KeygateError('INVALID_API_KEY', { reason }), shown);
    if (!record || record.type !== parsed.type || record.environment !== parsed.environment) {
      return invalid('unknown');
    }
    const now = Date.now();
    if (record.digest !== digest) {
      const graceEnds = record.previousDigestExpiresAt?.getTime() ?? 0;
      if (graceEnds <= now) return invalid('rotated');
    }
    if (record.revokedAt) return invalid('revoked');
    if (record.expiresAt && record.expiresAt.getTime() <= now) return invalid('expired');
    if (!environments.includes(record.environment)) return invalid('wrong_environment');

    // The whole path: the recorded one may be shortened.
    const restricted = checkRestrictions(record.restrictions, req, pathOf(req.url));
    if (restricted) {
      recordAuth(ctx, restricted.reason, record);
      return { ok: false, error: restricted, headers: {} };
    }

    const limited = await limit(ctx, record.id, tiers[record.type], record);
    if (limited.failure) return limited.failure;

    lastUsed.mark(record.id, now);
    audit.recordUse('auth.succeeded', record, ctx);
    return {
      ok: true,
      principal: {
        kind: 'key',
        id: record.id,
        ownerId: record.ownerId,
        scopes: record.scopes,
        resources: record.resources,
        type: record.type,
        environment: record.environment,
        key: toApiKey(record),
      },
      headers: limited.headers,
    };
  }

  function authorize(
    principal: Principal | undefined,
    requirement: ScopeRequirement,
    req: KeygateRequest,
    resource?: string | null,
  ): Decision {
    if (!principal) {
      return {
        ok: false,
        error: new KeygateError('AUTH_REQUIRED', { reason: 'no_authentication_middleware' }),
        headers: {},
      };
    }
    const error = checkRequirement(principal, requirement, resource);
    if (auditScopeChecks) {
      const ctx = contextOf(req);
      const action = resource === undefined ? 'scope.checked' : 'resource.checked';
      const subject = {
        id: principal.id,
        start: principal.kind === 'key' ? principal.key.start : null,
        ownerId: principal.ownerId,
      };
      const detail = () => ({
        required: requirement.scopes,
        mode: requirement.mode,
        granted: principal.scopes,
        // The resource comes from the path: a key pasted there is cut here too.
        ...(resource !== undefined
          ? { resource: resource === null ? null : format.redact(resource) }
          : {}),
      });
      if (error) {
        audit.record({
          action,
          outcome: 'failure',
          reason: error.reason,
          keyId: subject.id,
          keyStart: subject.start,
          ownerId: subject.ownerId,
          actor: null,
          detail: detail(),
          ...ctx,
        });
      } else audit.recordUse(action, subject, ctx, detail);
    }
    return error ? { ok: false, error, headers: {} } : { ok: true, principal, headers: {} };
  }

  return {
    authenticate,
    authorize,
    auditContext: contextOf,
    keys,
    audit,
    auditReader,
    adminScope,
    publicScopes,
    environments,
    acceptsSessions: options.session !== undefined,
    trustedOrigins,
    logger,
    async close() {
      await lastUsed.close();
      await audit.close();
      await Promise.all([
        limiter?.close?.(),
        failureGuard?.close?.(),
        invalidation.close?.(),
        store.close?.(),
      ]);
    },
  };
}

/**
 * Warnings about a backend that is down, at most one per cause every 10 s: an outage fails
 * every request, and one line per request would bury everything else in the log.
 */
class OutageLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly logger: Pick<Console, 'warn'>) {}

  warn(cause: string, error: unknown): void {
    const now = Date.now();
    const seen = this.#last.get(cause);
    if (seen && now - seen.at < 10_000) {
      seen.suppressed++;
      return;
    }
    const more = seen?.suppressed ? ` (${seen.suppressed} more since the last warning)` : '';
    this.#last.set(cause, { at: now, suppressed: 0 });
    this.logger.warn(`[keygate] ${cause}${more}:`, error);
  }
}

/** Writes `last_used_at` in the background, at most once per interval per key, in batches. */
class LastUsedRecorder {
  readonly #written = new Map<string, number>();
  readonly #pending = new Map<string, Date>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly intervalMs: number,
    private readonly logger: Pick<Console, 'warn'>,
  ) {}

  mark(id: string, nowMs: number): void {
    const last = this.#written.get(id);
    if (last !== undefined && nowMs - last < this.intervalMs) return;
    if (this.#written.size >= 100_000) this.#written.clear();
    this.#written.set(id, nowMs);
    this.#pending.set(id, new Date(nowMs));
    this.#timer ??= setTimeout(() => void this.flush(), Math.min(this.intervalMs, 5_000)).unref();
  }

  async flush(): Promise<void> {
    this.#timer = undefined;
    if (this.#flushing) await this.#flushing;
    if (this.#pending.size === 0) return;
    const uses = [...this.#pending].map(([id, at]) => ({ id, at }));
    this.#pending.clear();
    this.#flushing = this.store.touchLastUsed(uses).catch((error: unknown) => {
      this.logger.warn('[keygate] could not record last use of keys:', error);
    });
    await this.#flushing;
    this.#flushing = undefined;
  }

  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    await this.flush();
  }
}
