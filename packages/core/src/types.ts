import type { Failure } from './errors.js';

/**
 * Scopes known to the application. Augment `Register` once to make every
 * `requireScope()` call check its argument at compile time:
 *
 * ```ts
 * declare module '@keygate/core' {
 *   interface Register { scopes: 'read:data' | 'write:llm' | 'track:events' }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: augmented by applications
export interface Register {}

export type Scope = Register extends { scopes: infer S extends string } ? S : string;

export type KeyType = 'secret' | 'public';
export type KeyEnvironment = 'live' | 'test';

/** The request as the core sees it; each adapter builds one in a few lines. */
export interface KeygateRequest {
  method: string;
  /**
   * Path with optional query string (`/v1/x?api_key=...`), or an absolute URL as a Fetch
   * `Request#url` has it (serialized, so normalised).
   */
  url: string;
  headers: { get(name: string): string | null };
  /** Client IP as the framework resolved it (its proxy-trust setting applies). */
  ip: string | undefined;
  /**
   * The framework's own request id (e.g. Hono's `requestId` middleware), for the audit trail.
   * Default: the client's `x-request-id` when it is a plain token, else one generated when an
   * event is recorded.
   */
  requestId?: string;
}

/** What a key may be used from. A list that is absent or empty does not restrict. */
export interface KeyRestrictions {
  /** IPv4/IPv6 addresses or CIDR ranges allowed to use the key. */
  ips?: string[];
  /** Allowed `Origin`/`Referer` origins; `*` matches any characters of the host, e.g. `https://*.example.com`. */
  referrers?: string[];
  /** Allowed endpoints as `"METHOD /path/pattern"`; `*` in the method or a path segment matches any, a trailing `/**` any suffix. */
  endpoints?: string[];
}

export interface RateLimitOverride {
  /** Sustained rate: tokens refilled per second. */
  perSecond?: number;
  /** Token-bucket capacity. */
  burst?: number;
  /** Requests per UTC day. */
  daily?: number;
}

/** A key as stored: everything but the secret, which is never stored. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  ownerId: string;
  type: KeyType;
  environment: KeyEnvironment;
  /** Hex digest of the secret (SHA-256, or HMAC-SHA256 with a pepper). */
  digest: string;
  /** Which digest function produced `digest` (0: SHA-256, 1: HMAC-SHA256 with the configured pepper). */
  digestVersion: number;
  prefix: string;
  /** Prefix plus the first body characters, safe to display. */
  start: string;
  scopes: string[];
  /** `null` grants every resource of the owner; otherwise e.g. `['website:w_1', 'link:*']`. */
  resources: string[] | null;
  restrictions: KeyRestrictions | null;
  rateLimit: RateLimitOverride | null;
  metadata: Record<string, unknown> | null;
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  revokedAt: Date | null;
  /** The digest that worked before the last rotation, honoured until `previousDigestExpiresAt`. */
  previousDigest: string | null;
  previousDigestExpiresAt: Date | null;
  /** Set when the key was reported leaked: when, where, and what was done about it. */
  leak: KeyLeak | null;
}

/** What a report that a key leaked makes the key do (per environment; see `LeakOptions`). */
export type Containment = 'revoke' | 'quarantine' | 'notify';

/** A leaked key's state, as its record keeps it. Times are ISO-8601 text (the record stores them as JSON). */
export interface KeyLeak {
  /** The first report. */
  reportedAt: string;
  /** The latest report. */
  lastReportedAt: string;
  /** Distinct reports (a report repeated for the same place is counted once). */
  reports: number;
  /** Where the latest report found it (e.g. the GitHub URL), when it said. */
  url: string | null;
  /** Who found it: `github:<source>`, `scan`, or `admin`. */
  source: string;
  /** What was done at the first report. */
  containment: Containment;
  /**
   * Under `quarantine`: the client IPs the key keeps working from (those it was used from in the
   * days before the report) and the scopes it keeps (its read scopes). `null` otherwise.
   */
  quarantine: { ips: string[]; scopes: string[] } | null;
}

/** One report that a key leaked, as the store records it (once per key and fingerprint). */
export interface LeakReportRecord {
  keyId: string;
  /** Names the report's place (source and URL): a report with the same fingerprint is a repeat. */
  fingerprint: string;
  url: string | null;
  source: string;
  at: Date;
}

/** What the first report of a place changes: the key's leak state, whether to revoke it now, and the audit events. */
export interface LeakChange {
  leak: KeyLeak;
  revoke: boolean;
  events: AuditEvent[];
}

/** A key as a verified request carries it (`principal.key`): no digests. */
export type KeyDetails = Omit<ApiKeyRecord, 'digest' | 'previousDigest' | 'digestVersion'>;

/** A key as the management API shows it: no digests, and when it was last used. */
export interface ApiKey extends KeyDetails {
  /**
   * The last successful use, to the minute: read from the usage the audit trail keeps (and this
   * instance's uses not yet written), so verifying a key writes nothing to the key store.
   * `null`: never used, or no audit sink keeps usage.
   */
  lastUsedAt: Date | null;
}

export interface NewKeyRecord
  extends Omit<
    ApiKeyRecord,
    'createdAt' | 'updatedAt' | 'revokedAt' | 'previousDigest' | 'previousDigestExpiresAt' | 'leak'
  > {}

export type KeyPatch = Partial<
  Pick<
    ApiKeyRecord,
    'name' | 'scopes' | 'resources' | 'restrictions' | 'rateLimit' | 'metadata' | 'expiresAt'
  >
>;

export interface KeyRotation {
  digest: string;
  digestVersion: number;
  start: string;
  /** When the old digest stops working; `null` or a past time: at once. */
  previousDigestExpiresAt: Date | null;
}

export interface ListKeysQuery {
  ownerId?: string;
  includeRevoked?: boolean;
  limit?: number;
  /**
   * Return keys created before this key id (the last id of a previous page). With `ownerId`, an
   * id of another owner's key is no cursor: the page is empty, as for an id that names no key.
   */
  after?: string;
}

/**
 * Where keys live. Implementations: `MemoryKeyStore` (core), `PostgresKeyStore`
 * (@keygate/postgres). Every method may throw when the backend is unreachable;
 * the core turns that into `SERVICE_UNAVAILABLE` or serves from its cache.
 *
 * Audit in the same transaction: a store that can write audit events itself names the sink
 * whose records it writes in `auditSink`. When that sink is one of `auditSinks`, `create`,
 * `update`, `rotate` and `revoke` receive the change's `event`, which the store must write
 * atomically with the change (both or neither; nothing when the key is not found). The core
 * then delivers the event to the other sinks only. Stores without `auditSink` ignore `event`,
 * and the event goes through the audit queue like any other.
 */
export interface KeyStore {
  /** The sink whose records the mutations write, with the change, when given an `event`. Default: none. */
  readonly auditSink?: AuditSink;
  /** The key whose current or previous (grace-period) digest equals `digest`. */
  findByDigest(digest: string): Promise<ApiKeyRecord | null>;
  /**
   * The digest versions the store's keys use (`digestVersion`). With a pepper configured, keys
   * are also looked up by their unpeppered digest while the store holds version 0. Default: all.
   */
  digestVersions?(): Promise<number[]>;
  create(key: NewKeyRecord, event?: AuditEvent): Promise<ApiKeyRecord>;
  get(id: string): Promise<ApiKeyRecord | null>;
  list(query: ListKeysQuery): Promise<ApiKeyRecord[]>;
  update(id: string, patch: KeyPatch, event?: AuditEvent): Promise<ApiKeyRecord | null>;
  rotate(id: string, rotation: KeyRotation, event?: AuditEvent): Promise<ApiKeyRecord | null>;
  revoke(id: string, at: Date, event?: AuditEvent): Promise<ApiKeyRecord | null>;
  /**
   * Records a report that key `report.keyId` leaked, atomically: a report whose fingerprint the
   * store holds for the key already changes nothing (`change: null`); otherwise the store asks
   * `contain` for the change with the key as it stands (read under a lock, so concurrent reports
   * take turns), saves `leak`, revokes the key when `revoke` says so (keeping an earlier
   * revocation's time), and, when `writeEvents`, writes the change's events in the same
   * transaction. `null` when there is no such key.
   */
  recordLeak(
    report: LeakReportRecord,
    contain: (current: ApiKeyRecord) => LeakChange,
    writeEvents: boolean,
  ): Promise<{ record: ApiKeyRecord; change: LeakChange | null } | null>;
  /**
   * Where the key-management page's sessions live, next to the keys so that every instance
   * sharing the keys shares them too. Default: none (page sessions are off unless
   * `pageSessions.store` is given).
   */
  readonly sessions?: SessionStore;
  close?(): Promise<void>;
}

/**
 * A page session as stored: the key it was signed in with and the digest of the secret used
 * (never the secret), where it was signed in from, and until when. The token the cookie carries
 * is never stored, only its hash.
 */
export interface PageSessionRecord {
  /** SHA-256 (hex) of the session token in the cookie. */
  tokenHash: string;
  keyId: string;
  /** The digest the key was found by at sign-in: once it is no longer the key's current one (a rotation), the session ends. */
  keyDigest: string;
  ownerId: string;
  /** The origin the sign-in came from (`https://app.example.com`), checked against the key's referrer restrictions. */
  origin: string;
  createdAt: Date;
  /** The fixed end: sign-in plus the TTL. */
  expiresAt: Date;
  /** The idle end: moved on by use, never past `expiresAt`. */
  activeUntil: Date;
}

/**
 * Where page sessions live. Implementations: `MemorySessionStore` (core, `MemoryKeyStore.sessions`),
 * `PostgresSessionStore` (@keygate/postgres, `PostgresKeyStore.sessions`). Every method may throw
 * when the backend is unreachable; the request is then answered 503.
 */
export interface SessionStore {
  /** Stores a new session, and deletes the oldest of its key's sessions beyond `maxPerKey`. */
  create(session: PageSessionRecord, maxPerKey: number): Promise<void>;
  /** The session with this token hash while it is active at `now` (before its idle and fixed ends). */
  get(tokenHash: string, now: Date): Promise<PageSessionRecord | null>;
  /** Moves a session's idle end to `activeUntil`, never past its `expiresAt`. */
  touch(tokenHash: string, activeUntil: Date): Promise<void>;
  /** Ends a session: the one deleted, or `null` when there was none. */
  delete(tokenHash: string): Promise<PageSessionRecord | null>;
  /** Deletes up to `limit` sessions no longer active at `now`; returns how many it deleted. */
  purge(now: Date, limit: number): Promise<number>;
}

/** One limit applied to a key. */
export type RateLimitPolicy =
  | {
      name: string;
      kind: 'token-bucket';
      /** Bucket capacity (burst). */
      capacity: number;
      /** Tokens added per second (sustained rate). */
      refillPerSecond: number;
    }
  | {
      name: string;
      kind: 'fixed-window';
      limit: number;
      /** Window length; windows are aligned to the Unix epoch (a day window starts at UTC midnight). */
      windowSeconds: number;
    };

export interface PolicyState {
  policy: RateLimitPolicy;
  /** The policy's quota: capacity for a bucket, limit for a window. */
  limit: number;
  /** Whole requests still admissible now (after this request when admitted). */
  remaining: number;
  /** Seconds until the policy is back to its full quota. */
  resetSeconds: number;
}

export interface RateLimitResult {
  allowed: boolean;
  policies: PolicyState[];
  /** When rejected: seconds until a request could be admitted. */
  retryAfterSeconds?: number;
}

/**
 * Consumes one request against all of a key's policies atomically: either every
 * policy admits it and each is charged, or none is charged.
 */
export interface RateLimiter {
  /** The answer at once when the limiter needs to wait for nothing (e.g. a leased token), else a promise. */
  consume(
    subject: string,
    policies: readonly RateLimitPolicy[],
  ): RateLimitResult | Promise<RateLimitResult>;
  /** A key changed (limits, revocation, rotation) on some instance: drop what is held for it, e.g. leased tokens. */
  invalidate?(subject: string): void;
  /** Key changes may have been missed: drop what is held for every subject. */
  reset?(): void;
  close?(): Promise<void>;
}

/** Counts failed authentications per client IP (brute-force guard). */
export interface AuthFailureGuard {
  /** Record one failure; returns the seconds the IP is now blocked for (0: not blocked). */
  recordFailure(ip: string): Promise<number>;
  close?(): Promise<void>;
}

/** Tells every instance to drop cached verifications of a key. */
export interface InvalidationBus {
  publish(keyId: string): Promise<void>;
  /**
   * Subscribe. `onLost`: the subscription is interrupted, so changes made elsewhere go unheard
   * (keygate then trusts a cached key for `cache.busDownTtlMs` only, and says so once; `cause`
   * is for that line). `onReset`: it is back after an interruption (drop everything cached).
   */
  subscribe(
    onInvalidate: (keyId: string) => void,
    onReset: () => void,
    onLost?: (cause: string) => void,
  ): Promise<void>;
  close?(): Promise<void>;
}

export type AuditAction =
  | 'auth.succeeded'
  | 'auth.failed'
  | 'scope.checked'
  | 'resource.checked'
  | 'key.created'
  | 'key.updated'
  | 'key.rotated'
  | 'key.revoked'
  | 'key.leaked'
  | 'session.started'
  | 'session.ended';

export type AuditOutcome = 'success' | 'failure';

export interface AuditEvent {
  id: string;
  at: Date;
  action: AuditAction;
  outcome: AuditOutcome;
  /** Why it failed: `missing`, `malformed`, `unknown`, `revoked`, `expired`, `wrong_environment`, `restricted_ip`, ... */
  reason: string | null;
  keyId: string | null;
  /** The key's displayable start (prefix and first characters), never the secret. */
  keyStart: string | null;
  ownerId: string | null;
  /** Who performed an administrative action (key id, session id or `cli`). */
  actor: string | null;
  ip: string | null;
  userAgent: string | null;
  method: string | null;
  /** Request path, without the query string (so never a key sent as `?api_key=`). */
  path: string | null;
  /** The client's `x-request-id` when it is a plain token of up to 128 characters, else a generated UUID. */
  requestId: string | null;
  detail: Record<string, unknown> | null;
}

/**
 * What every audit record of one request says about the request. `requestId` is `null` until an
 * event of the request is recorded, which then generates one that its other events share.
 */
export type AuditContext = Pick<AuditEvent, 'ip' | 'userAgent' | 'method' | 'path' | 'requestId'>;

/** The successes counted as usage (an authentication, a passed check) rather than recorded one by one. */
export type UsageAction = 'auth.succeeded' | 'scope.checked' | 'resource.checked';

/** One key's successes in one minute, from one client on one method and path. */
export interface UsageRow {
  /** Start of the minute (UTC). */
  minute: Date;
  /** The key's id, or the session's for a request authenticated by a session. */
  keyId: string;
  keyStart: string | null;
  ownerId: string | null;
  ip: string | null;
  userAgent: string | null;
  method: string | null;
  /** Request path, without the query string. */
  path: string | null;
  /** Successful authentications (`auth.succeeded`). */
  authenticated: number;
  /** Scope checks passed (`scope.checked`). */
  scopeChecks: number;
  /** Resource checks passed (`resource.checked`). */
  resourceChecks: number;
  firstSeen: Date;
  lastSeen: Date;
}

/** Usage rows written together. A batch that fails is retried whole with the same `id`. */
export interface UsageBatch {
  id: string;
  rows: readonly UsageRow[];
}

/**
 * Where audit events go, in batches, off the request path. A batch that fails is retried whole
 * (on every sink), so a sink should skip an event whose `id` it already has.
 */
export interface AuditSink {
  write(events: readonly AuditEvent[]): Promise<void>;
  /**
   * Takes successes (authentications, passed checks) as per-minute counts instead of one event
   * each: a sink with this method gets them only here, a sink without it gets every event.
   * Counts add to what the sink already holds for the same key, client, method, path and minute; a batch whose `id` the sink
   * already has must be skipped (it is a retry after a lost reply).
   */
  writeUsage?(batch: UsageBatch): Promise<void>;
  close?(): Promise<void>;
}

export interface AuditQuery {
  keyId?: string;
  ownerId?: string;
  limit?: number;
}

/** A window of usage in buckets of one interval (an hour or a UTC day). */
export interface UsageQuery {
  keyId: string;
  /** Start of the first bucket, aligned to `interval`. */
  from: Date;
  /** End of the window, exclusive. */
  to: Date;
  interval: 'hour' | 'day';
}

/** Requests of one key in one bucket. */
export interface UsageCounts {
  /** Start of the bucket. */
  start: Date;
  /** Successful authentications. */
  served: number;
  /** Failed authentications and denials (scope, resource, restriction) attributed to the key. */
  failed: number;
  /** Requests refused with 429. */
  rateLimited: number;
}

/** A sink that can also be read back (`GET /v1/api-keys/:id/events`, `keygate audit`). */
export interface AuditReader {
  query(query: AuditQuery): Promise<AuditEvent[]>;
  /**
   * Counts per bucket of the window (`GET /v1/api-keys/:id/usage`, `keygate usage`). Buckets
   * with nothing to count may be left out. Without this method, usage reads as zeros.
   */
  usage?(query: UsageQuery): Promise<UsageCounts[]>;
  /** The last successful use of each key that has one (the latest `lastSeen` of its usage rows). */
  lastUsed?(keyIds: readonly string[]): Promise<Map<string, Date>>;
  /**
   * The client IPs a key was used from successfully since `since` (at most `limit`, most used
   * first): what a quarantined key keeps working from. Without this method, none.
   */
  clientIps?(keyId: string, since: Date, limit: number): Promise<string[]>;
}

/** A browser session resolved by the application when no key is sent. */
export interface Session {
  id: string;
  ownerId: string;
  scopes: string[];
  /** `null` or absent: every resource of the owner. */
  resources?: string[] | null;
  /** Grants use of the management router (owner/admin of `ownerId`). */
  admin?: boolean;
}

/** The page session a request came with: which one (not its token), and its fixed end. */
export interface PageSessionRef {
  /** A public name for the session (from its token's hash), for the audit trail and `GET /me`. */
  id: string;
  expiresAt: Date;
}

export type SessionResolver = (req: KeygateRequest) => Session | null | Promise<Session | null>;

/** Who a request acts as, put on the framework's context by each adapter. */
export type Principal =
  | {
      kind: 'key';
      id: string;
      ownerId: string;
      scopes: readonly string[];
      resources: readonly string[] | null;
      type: KeyType;
      environment: KeyEnvironment;
      key: KeyDetails;
      /** Set when the request came with a page session signed in with this key, not with the key itself. */
      pageSession?: PageSessionRef;
    }
  | {
      kind: 'session';
      id: string;
      ownerId: string;
      scopes: readonly string[];
      resources: readonly string[] | null;
      /** Sessions act as secret-key holders in the given environment. */
      type: 'secret';
      environment: KeyEnvironment;
      session: Session;
    };

export type Headers = Record<string, string>;

/** What an adapter renders: a status, headers and a body (JSON, or the page's text and bytes). */
export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

/**
 * An authenticated request, which the adapter keeps on the framework's context (`c.var`, `req`,
 * `ctx.state`): who it acts as, the rate-limit headers to answer with, and what its guards need.
 */
export interface Authentication {
  ok: true;
  principal: Principal;
  headers: Headers;
  /** The request's audit fields, shared by the records of its guard checks. */
  context: AuditContext;
  /** The instance that authenticated it, which its guards ask. */
  keygate: Authorizer;
}

/** What a route needs of a request: scopes (all or any of them), and optionally a key type and environments. */
export interface ScopeRequirement {
  scopes: readonly string[];
  mode: 'all' | 'any';
  /** Only this key type may pass (e.g. `'secret'` for secret-only routes); public keys get `FORBIDDEN`. */
  keyType?: KeyType;
  /** Only keys (and sessions) of these environments may pass (e.g. `['live']`); others get `FORBIDDEN`. */
  environments?: readonly KeyEnvironment[];
}

/** What a request's guards ask of the instance that authenticated it (a `Keygate`). */
export interface Authorizer {
  /**
   * Checks an authenticated request against a route's requirement: `null` when it passes.
   * `resource` is `undefined` when the route names none and `null` when it names one the request
   * does not carry.
   */
  authorize(
    auth: Authentication,
    requirement: ScopeRequirement,
    resource?: string | null,
  ): Failure | null;
}

/** What `authenticate()` decides; adapters keep the success and render the failure. */
export type Decision = Authentication | Failure;
