import { invalidReason } from './check-key.js';
import { normaliseOrigin } from './csrf.js';
import { type Failure, KeygateConfigError, KeygateError } from './errors.js';
import { pathOf } from './extract.js';
import { createKeyHasher } from './key-format.js';
import { keyDetails } from './keys.js';
import { type Limited, limitRequest } from './limit.js';
import type { KeyMatch, KnownKey } from './look-up.js';
import type { PageSessionConfig } from './options.js';
import type { Pipeline } from './pipeline.js';
import { requestContext, requestIdOf } from './request-context.js';
import { restrictionViolation } from './restrictions.js';
import {
  clearCookie,
  isHttps,
  newToken,
  type SessionToken,
  sessionCookie,
  sessionId,
  TOKEN,
  tokenOf,
} from './session-cookie.js';
import type {
  AuditContext,
  Decision,
  KeyDetails,
  KeygateRequest,
  PageSessionRecord,
} from './types.js';

const SHA256 = createKeyHasher();
const RETRY_SOON = { 'Retry-After': '1' };
const VIA_SESSION = { via: 'page_session' };
/** Most ended sessions one sign-in deletes, so the purge it starts is always short. */
const PURGE_BATCH = 1_000;
/** How often a busy session's idle end is moved on (at most): once a minute, or a tenth of the idle time. */
const TOUCH_EVERY_MS = 60_000;

/** What signing in needs: the key as typed, the request it came with, and that request's own origin. */
export interface SignInInput {
  secret: string;
  request: KeygateRequest;
  /** The request's origin as the framework sees it (`https://api.example.com`, its proxy trust applied). */
  origin: string;
}

/** A signed-in session: the `Set-Cookie` value to answer with, and the key it acts as. */
export interface SignedIn {
  ok: true;
  /** The whole `Set-Cookie` value (`__Host-` and `Secure` when the origin is HTTPS). */
  cookie: string;
  key: KeyDetails;
  expiresAt: Date;
}

/**
 * Whether a request has a session: `'page'` (a page session that is valid for this request),
 * `'app'` (the app's own session resolver found one), `'ended'` (a page-session cookie whose
 * session is over: it should be cleared), or `null`.
 */
export type SessionState = 'page' | 'app' | 'ended' | null;

/**
 * The key-management page's sessions (`keygate.sessions`): a browser signs in once with an admin
 * key, and from then on its cookie stands for that key, checked against the key's current record
 * on every request.
 */
export interface PageSessions {
  /** Whether page sessions are on (a session store is configured). */
  readonly enabled: boolean;
  /**
   * Signs in with a key: a live, current secret of a secret key with the admin scope, allowed
   * from this request's IP and origin. Failures are audited and counted against the client as
   * any failed authentication is.
   */
  signIn(input: SignInInput): Promise<SignedIn | Failure>;
  /** Ends the request's page session, if any, everywhere; the `Set-Cookie` value that clears the cookie. */
  signOut(request: KeygateRequest, origin: string): Promise<{ cookie: string }>;
  /** Whether the request has a session, without charging or recording anything (for the page's first paint). */
  current(request: KeygateRequest): Promise<SessionState>;
  /** The `Set-Cookie` value that clears a session cookie for a request of `origin`. */
  clearCookie(origin: string): string;
  /** Deletes up to `limit` sessions that are over (default 1,000); how many. Sign-ins also do it. */
  purge(limit?: number): Promise<number>;
}

export function pageSessions(pipeline: Pipeline): PageSessions {
  return {
    enabled: pipeline.config.pageSessions !== null,
    signIn: (input) => signIn(pipeline, input),
    signOut: (request, origin) => signOut(pipeline, request, origin),
    current: (request) => currentSession(pipeline, request),
    clearCookie: (origin) => clearCookie(isHttps(origin)),
    purge: (limit = PURGE_BATCH) => configOf(pipeline).store.purge(new Date(), limit),
  };
}

function configOf(pipeline: Pipeline): PageSessionConfig {
  const config = pipeline.config.pageSessions;
  if (!config) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'page sessions are off: the key store keeps no sessions (give createKeygate pageSessions.store)',
    );
  }
  return config;
}

async function signIn(pipeline: Pipeline, input: SignInInput): Promise<SignedIn | Failure> {
  const sessions = configOf(pipeline);
  const { config, attempts } = pipeline;
  const { request, origin } = input;
  const context = requestContext(request, pathOf(request.url), config.format);
  const parsed = config.format.parse(input.secret.trim());
  if (!parsed) return attempts.fail(context, invalidKey('malformed'), null);
  let match: KeyMatch;
  try {
    match = await pipeline.lookUp(parsed.secret);
  } catch (error) {
    return unavailable(pipeline, context, 'key store unavailable', error);
  }
  const record = match.known?.record;
  // A secret kept for a rotation's grace period serves servers still switching over, not a new session.
  const reason =
    invalidReason(match, parsed, Date.now(), config.environments) ??
    (record && match.digest !== record.digest ? 'rotated' : null);
  if (reason !== null || !match.known) {
    const shown = { id: record?.id ?? null, start: parsed.start, ownerId: record?.ownerId ?? null };
    return attempts.fail(context, invalidKey(reason ?? 'unknown'), shown);
  }
  const known = match.known;
  const refusal = signInRefusal(known, request, origin, config.adminScope);
  if (refusal) return attempts.refuse(context, refusal, known.record);

  const token = newToken();
  const tokenHash = SHA256.digest(token);
  const now = new Date();
  const expiresAt = new Date(now.getTime() + sessions.ttlSeconds * 1000);
  const session: PageSessionRecord = {
    tokenHash,
    keyId: known.id,
    keyDigest: match.digest,
    ownerId: known.record.ownerId,
    origin,
    createdAt: now,
    expiresAt,
    activeUntil: earlier(expiresAt, now.getTime() + sessions.idleSeconds * 1000),
  };
  try {
    await sessions.store.create(session, sessions.maxPerKey);
  } catch (error) {
    return unavailable(pipeline, context, 'session store unavailable', error);
  }
  sessions.store
    .purge(now, PURGE_BATCH)
    .catch((error: unknown) => pipeline.outage.warn('session store unavailable', error));
  recordSessionEvent(pipeline, 'session.started', session, known.record.start, context);
  return {
    ok: true,
    cookie: sessionCookie(token, isHttps(origin), sessions.ttlSeconds),
    key: keyDetails(known.record),
    expiresAt,
  };
}

/** Why a valid key may not open a session from this request: not an admin key, or its restrictions. */
function signInRefusal(
  known: KnownKey,
  request: KeygateRequest,
  origin: string,
  adminScope: string,
): KeygateError | null {
  if (known.record.type !== 'secret') {
    return new KeygateError('FORBIDDEN', {
      message: 'Public keys cannot sign in',
      reason: 'key_type',
    });
  }
  if (!known.record.scopes.includes(adminScope)) {
    return new KeygateError('INSUFFICIENT_SCOPE', {
      message: `Signing in takes a key with the ${adminScope} scope`,
      requiredScope: adminScope,
    });
  }
  // Its endpoint restrictions apply to each request the session makes, not to the sign-in form.
  const rules = known.restrictions && { ...known.restrictions, endpoints: null };
  return restrictionViolation(rules, fromOrigin(request, origin), '/');
}

async function signOut(
  pipeline: Pipeline,
  request: KeygateRequest,
  origin: string,
): Promise<{ cookie: string }> {
  const sessions = configOf(pipeline);
  const token = tokenOf(request.headers);
  if (token && TOKEN.test(token.value)) {
    const ended = await sessions.store.delete(SHA256.digest(token.value));
    if (ended) {
      const context = requestContext(request, pathOf(request.url), pipeline.config.format);
      recordSessionEvent(pipeline, 'session.ended', ended, null, context, 'signed_out');
    }
  }
  return { cookie: clearCookie(isHttps(origin)) };
}

async function currentSession(pipeline: Pipeline, request: KeygateRequest): Promise<SessionState> {
  const token = pipeline.config.pageSessions ? tokenOf(request.headers) : null;
  if (token) {
    // The page is no endpoint of the API: the key's endpoint restrictions apply to its calls.
    const found = await findSession(pipeline, token, request, null);
    if ('session' in found) return 'page';
    if ('ended' in found) return 'ended';
    return null;
  }
  const resolver = pipeline.config.session;
  return resolver && (await resolver(request)) ? 'app' : null;
}

/**
 * The page-session step of a request without a key: `null` when it carries no session cookie
 * (the app's resolver is asked next), else the decision. The session acts as its key with the
 * key's current record: a key revoked, rotated, expired or changed on any instance (the
 * verification cache hears of it through the invalidation bus) is seen on the next request. Its
 * restrictions apply to every request, and its limits; the use is counted as the key's.
 */
export async function authenticatePageSession(
  pipeline: Pipeline,
  req: KeygateRequest,
  context: AuditContext,
  path: string,
): Promise<Decision | null> {
  const sessions = pipeline.config.pageSessions;
  const token = sessions ? tokenOf(req.headers) : null;
  if (!sessions || !token) return null;
  const { attempts } = pipeline;
  const crossSite = crossSiteUse(req, pipeline.config.trustedOrigins);
  if (crossSite) return attempts.refuse(context, crossSite, null);
  let found: Found;
  try {
    found = await findSession(pipeline, token, req, path);
  } catch (error) {
    return unavailable(pipeline, context, 'session store unavailable', error);
  }
  if ('ended' in found) {
    // An app with sessions of its own may still know this browser.
    if (pipeline.config.session) return null;
    return attempts.refuse(context, sessionEnded(found.ended), found.known?.record ?? null);
  }
  if ('refused' in found) return attempts.refuse(context, found.refused, found.known.record);
  const { session, known } = found;
  const nextIdleEnd = earlier(session.expiresAt, Date.now() + sessions.idleSeconds * 1000);
  const touchEvery = Math.min(TOUCH_EVERY_MS, (sessions.idleSeconds * 1000) / 10);
  if (nextIdleEnd.getTime() - session.activeUntil.getTime() >= touchEvery) {
    // A failed touch costs the session idle time, not this request.
    await sessions.store
      .touch(session.tokenHash, nextIdleEnd)
      .catch((error: unknown) => pipeline.outage.warn('session store unavailable', error));
  }
  const limited = limitRequest(
    pipeline.config.limiter,
    known.id,
    known.policies,
    known.policyHeader,
    pipeline.outage,
  );
  return admit(pipeline, known, session, context, await limited);
}

function admit(
  pipeline: Pipeline,
  known: KnownKey,
  session: PageSessionRecord,
  context: AuditContext,
  limited: Limited,
): Decision {
  if (limited.error) {
    return pipeline.attempts.refuse(context, limited.error, known.record, limited.headers);
  }
  pipeline.audit.recordUse('auth.succeeded', known.record, context, VIA_SESSION);
  return {
    ok: true,
    principal: {
      ...known.principal,
      pageSession: { id: sessionId(session.tokenHash), expiresAt: session.expiresAt },
    },
    headers: limited.headers,
    context,
    keygate: pipeline.keygate,
  };
}

type Found =
  | { session: PageSessionRecord; known: KnownKey }
  | { ended: string; known: KnownKey | null }
  | { refused: KeygateError; known: KnownKey };

/**
 * The session a cookie names and its key's current record, or why it is over (it is then
 * deleted, everywhere), or the restriction of its key this request breaks (its endpoint
 * restrictions against `path`, none when `path` is `null`).
 */
async function findSession(
  pipeline: Pipeline,
  token: SessionToken,
  req: KeygateRequest,
  path: string | null,
): Promise<Found> {
  const { store } = configOf(pipeline);
  if (!TOKEN.test(token.value)) return { ended: 'unknown', known: null };
  const now = Date.now();
  const session = await store.get(SHA256.digest(token.value), new Date(now));
  if (!session) return { ended: 'unknown', known: null };
  // A session signed in over HTTPS only ever travels as `__Host-`: a plain cookie was planted.
  if (isHttps(session.origin) && !token.secure) return { ended: 'cookie_name', known: null };
  const known = await pipeline.findByDigest(session.keyDigest);
  const reason = endReason(known, session, now, pipeline.config.environments);
  if (reason !== null) {
    await store.delete(session.tokenHash);
    return { ended: reason, known };
  }
  const key = known as KnownKey;
  const rules =
    path === null && key.restrictions ? { ...key.restrictions, endpoints: null } : key.restrictions;
  const refused = restrictionViolation(rules, fromOrigin(req, session.origin), path ?? '/');
  return refused ? { refused, known: key } : { session, known: key };
}

/** Why a session's key no longer lets it act (the session is then over), or `null`. */
function endReason(
  known: KnownKey | null,
  session: PageSessionRecord,
  nowMs: number,
  environments: readonly string[],
): string | null {
  const record = known?.record;
  if (!record || record.id !== session.keyId) return 'key_unknown';
  if (record.digest !== session.keyDigest) return 'key_rotated';
  if (record.revokedAt) return 'key_revoked';
  if (record.expiresAt && record.expiresAt.getTime() <= nowMs) return 'key_expired';
  if (!environments.includes(record.environment)) return 'wrong_environment';
  return null;
}

/**
 * A state-changing request that the browser says another site sent: the session cookie does not
 * stand for it (`SameSite=Strict` keeps it from cross-site requests, not from sibling sites).
 */
function crossSiteUse(
  req: KeygateRequest,
  trustedOrigins: ReadonlySet<string>,
): KeygateError | null {
  const method = req.method.toUpperCase();
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return null;
  const site = req.headers.get('sec-fetch-site');
  if (site === null || site === 'same-origin' || site === 'none') return null;
  const origin = req.headers.get('origin');
  const claimed = origin === null ? null : normaliseOrigin(origin);
  if (claimed !== null && trustedOrigins.has(claimed)) return null;
  return new KeygateError('FORBIDDEN', {
    message: 'Cross-site requests cannot use the session',
    reason: 'cross_site',
  });
}

/** The request, with the session's sign-in origin standing for its own: a page's `fetch` may send neither `Origin` nor `Referer`. */
function fromOrigin(req: KeygateRequest, origin: string): KeygateRequest {
  const headers = req.headers;
  return {
    ...req,
    headers: {
      get: (name) => (name === 'origin' ? origin : name === 'referer' ? null : headers.get(name)),
    },
  };
}

function recordSessionEvent(
  pipeline: Pipeline,
  action: 'session.started' | 'session.ended',
  session: PageSessionRecord,
  keyStart: string | null,
  context: AuditContext,
  reason: string | null = null,
): void {
  pipeline.audit.record({
    action,
    outcome: 'success',
    reason,
    keyId: session.keyId,
    keyStart,
    ownerId: session.ownerId,
    actor: session.keyId,
    ip: context.ip,
    userAgent: context.userAgent,
    method: context.method,
    path: context.path,
    requestId: requestIdOf(context),
    detail: { session: sessionId(session.tokenHash), expiresAt: session.expiresAt.toISOString() },
  });
}

function earlier(end: Date, ms: number): Date {
  return end.getTime() <= ms ? end : new Date(ms);
}

function invalidKey(reason: string): KeygateError {
  return new KeygateError('INVALID_API_KEY', { reason });
}

function sessionEnded(reason: string): KeygateError {
  return new KeygateError('AUTH_REQUIRED', {
    message: 'The session has ended: sign in again',
    reason: `session_${reason}`,
  });
}

function unavailable(
  pipeline: Pipeline,
  context: AuditContext,
  what: string,
  error: unknown,
): Failure {
  pipeline.outage.warn(what, error);
  const error503 = new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' });
  return pipeline.attempts.refuse(context, error503, null, RETRY_SOON);
}
