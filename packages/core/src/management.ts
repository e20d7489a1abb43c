import { BackendUnavailableError } from './circuit.js';
import { crossSiteRefusal, mediaTypeRefusal } from './csrf.js';
import { boundsOf } from './delegation.js';
import { failure, isKeygateError, KeygateError } from './errors.js';
import { pathOf } from './extract.js';
import { findUnsafeText } from './key-input.js';
import type { Keygate } from './keygate.js';
import type { Actor } from './keys.js';
import {
  answerAdminLeakReport,
  answerSignedLeakReport,
  isSignedLeakReport,
  MAX_LEAK_REPORT_BODY,
} from './leak-report.js';
import { requestIdOf } from './request-context.js';
import type { Authentication, KeygateRequest, Principal } from './types.js';
import type { WebhookRegistry } from './webhooks.js';

export interface ManagementRequest {
  /** The request as the adapter converted it (method, headers and the query string are read from it). */
  request: KeygateRequest;
  /** The request's authentication, when a middleware mounted before the router made one; otherwise the router authenticates it. */
  authentication?: Authentication | undefined;
  /**
   * Path below the mount point exactly as sent, not percent-decoded: `/`, `/key_1`,
   * `/key_1/rotate`, `/key_1/events`, `/key_1/usage`. (Decoded, `/key_1%2Frotate` would reach
   * the rotate route.)
   */
  path: string;
  /** The request's own origin as the framework sees it (`https://api.example.com`), for sessions' CSRF check. */
  origin: string;
  /**
   * The body, read only by routes that take one: the request's stream (read here, up to
   * {@link MAX_MANAGEMENT_BODY} bytes), or what a body parser mounted before made of it (JSON
   * text or a parsed object); `undefined` for none.
   */
  body: () => unknown;
}

/** What the router answers; `ok` is `false` for a failure (which Hono throws as an `HTTPException`). */
export interface ManagementResponse {
  ok: boolean;
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** No answer of the router is kept by a browser or a proxy: some hold a secret, all describe keys. */
const NO_STORE = { 'Cache-Control': 'no-store' };

/** Largest management request body accepted, in bytes. */
export const MAX_MANAGEMENT_BODY = 64 * 1024;

const ID = '([A-Za-z0-9_-]{1,200})';
const LEAKS = /^\/leaks\/?$/;
const ROUTES: Array<{ method: string; pattern: RegExp; action: Action }> = [
  { method: 'GET', pattern: /^\/?$/, action: 'list' },
  // Before `/:id`: key ids are `key_…`, so `me` and `leaks` never name a key.
  { method: 'GET', pattern: /^\/me\/?$/, action: 'me' },
  { method: 'POST', pattern: LEAKS, action: 'leaks' },
  { method: 'GET', pattern: /^\/webhooks\/?$/, action: 'webhooks' },
  { method: 'POST', pattern: /^\/webhooks\/?$/, action: 'webhook-create' },
  { method: 'GET', pattern: /^\/webhooks\/deliveries\/?$/, action: 'webhook-deliveries' },
  { method: 'DELETE', pattern: new RegExp(`^/webhooks/${ID}/?$`), action: 'webhook-delete' },
  { method: 'POST', pattern: /^\/?$/, action: 'create' },
  { method: 'GET', pattern: new RegExp(`^/${ID}/?$`), action: 'get' },
  { method: 'PATCH', pattern: new RegExp(`^/${ID}/?$`), action: 'update' },
  { method: 'DELETE', pattern: new RegExp(`^/${ID}/?$`), action: 'revoke' },
  { method: 'POST', pattern: new RegExp(`^/${ID}/rotate/?$`), action: 'rotate' },
  { method: 'GET', pattern: new RegExp(`^/${ID}/events/?$`), action: 'events' },
  { method: 'GET', pattern: new RegExp(`^/${ID}/usage/?$`), action: 'usage' },
];
type Action =
  | 'me'
  | 'leaks'
  | 'webhooks'
  | 'webhook-create'
  | 'webhook-deliveries'
  | 'webhook-delete'
  | 'list'
  | 'create'
  | 'get'
  | 'update'
  | 'revoke'
  | 'rotate'
  | 'events'
  | 'usage';
const TAKES_BODY: ReadonlySet<Action> = new Set([
  'create',
  'update',
  'rotate',
  'leaks',
  'webhook-create',
]);
const KEY_ID = /^[A-Za-z0-9_-]{1,200}$/;

/** The usage route's query parameters that are given, as the strings they are (validated by `keys.usage`). */
function usageParams(query: URLSearchParams): Record<string, string> {
  const params: Record<string, string> = {};
  for (const name of ['range', 'from', 'to', 'interval']) {
    const value = query.get(name);
    if (value !== null) params[name] = value;
  }
  return params;
}

function ok(data: unknown, status = 200): ManagementResponse {
  return { ok: true, status, body: { success: true, data }, headers: {} };
}

/** Only owners/admins of an organisation manage its keys: a secret key with the admin scope, or an admin session. */
function checkAdmin(keygate: Keygate, principal: Principal): KeygateError | null {
  if (principal.kind === 'session') {
    return principal.session.admin
      ? null
      : new KeygateError('FORBIDDEN', { message: 'Managing API keys requires an admin session' });
  }
  if (principal.type !== 'secret') {
    return new KeygateError('FORBIDDEN', {
      message: 'Public keys cannot manage API keys',
      reason: 'key_type',
    });
  }
  if (!principal.scopes.includes(keygate.adminScope)) {
    return new KeygateError('INSUFFICIENT_SCOPE', {
      message: `API key lacks the required scope: ${keygate.adminScope}`,
      requiredScope: keygate.adminScope,
    });
  }
  return null;
}

function invalid(message: string, reason?: string): KeygateError {
  return new KeygateError('INVALID_REQUEST', { message, reason });
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

function bodyTooLarge(): KeygateError {
  return invalid('the request body is too large', 'body_too_large');
}

function isStream(body: unknown): body is AsyncIterable<Uint8Array | string> {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

/** The body of a route that takes one, as JSON: read from the stream up to the limit, or as a parser left it. */
async function parseBody(
  source: unknown,
  headers: KeygateRequest['headers'],
  limit = MAX_MANAGEMENT_BODY,
): Promise<unknown> {
  const body = isStream(source)
    ? await readBody(source, headers.get('content-length'), limit)
    : source;
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'string') return body;
  if (body.length > limit) throw bodyTooLarge();
  try {
    return JSON.parse(body);
  } catch {
    throw invalid('the request body is not valid JSON');
  }
}

function intParam(query: URLSearchParams, name: string, max: number): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw invalid(`${name} must be an integer from 1 to ${max}`);
  }
  return Number(value);
}

/** Who is calling and the bounds of what they may delegate: their own scopes, resources, environment, expiry, limits and restrictions. */
function describePrincipal(principal: Principal) {
  const common = {
    kind: principal.kind,
    id: principal.id,
    ownerId: principal.ownerId,
    type: principal.type,
    environment: principal.environment,
    scopes: principal.scopes,
    resources: principal.resources,
  };
  if (principal.kind === 'session') return common;
  const { name, start, expiresAt, restrictions, rateLimit } = principal.key;
  const session = principal.pageSession ?? null;
  return { ...common, name, start, expiresAt, restrictions, rateLimit, session };
}

function queryOf(url: string): URLSearchParams {
  const start = url.indexOf('?');
  if (start === -1) return new URLSearchParams();
  const end = url.indexOf('#', start);
  return new URLSearchParams(url.slice(start + 1, end === -1 ? undefined : end));
}

function cursorParam(query: URLSearchParams): string | undefined {
  const after = query.get('after');
  if (after === null) return undefined;
  if (!KEY_ID.test(after)) throw invalid('after must be a key id');
  return after;
}

/**
 * The path of `url` (as sent) below the mount point `mountPath`: the segments after the mount's,
 * cut from the raw path (a framework's decoded path would turn `key_1%2Frotate` into
 * `key_1/rotate`).
 */
export function pathBelowMount(url: string, mountPath: string): string {
  const depth = mountPath.replace(/\/+$/, '').split('/').length;
  return `/${pathOf(url).split('/').slice(depth).join('/')}`;
}

/**
 * The path below `prefix` when `path` is `prefix` or under it (`/v1/api-keys/key_1` →
 * `/key_1`), `null` otherwise: for frameworks that mount a middleware on every path (Koa).
 */
export function pathUnder(path: string, prefix: string): string | null {
  if (path === prefix) return '/';
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : null;
}

/**
 * The management API (`/v1/api-keys`) as one function, so every adapter mounts the same
 * behaviour: authenticate (unless a middleware before did), route on the raw path, check the
 * caller is an admin of its organisation, refuse cross-site session requests and bodies that are
 * not JSON, read the body up to its limit, act, and answer. A refusal carries the status, JSON
 * body and headers to answer with; so does a success (with the request's rate-limit headers).
 */
export async function handleManagementRequest(
  keygate: Keygate,
  req: ManagementRequest,
): Promise<ManagementResponse> {
  if (isSignedLeakReport(req) && LEAKS.test(req.path)) {
    if (req.request.method.toUpperCase() !== 'POST') {
      return failure(new KeygateError('NOT_FOUND', { message: 'No such API key endpoint' }));
    }
    // GitHub signs its reports: the signature, not a key, authenticates them.
    try {
      return await answerSignedLeakReport(keygate, req);
    } catch (error) {
      return unavailable(keygate, error);
    }
  }
  const decision = req.authentication ?? (await keygate.authenticate(req.request));
  if (!decision.ok) return { ...decision, headers: { ...decision.headers, ...NO_STORE } };
  const response = await answer(keygate, req, decision);
  return { ...response, headers: { ...decision.headers, ...response.headers, ...NO_STORE } };
}

async function answer(
  keygate: Keygate,
  req: ManagementRequest,
  auth: Authentication,
): Promise<ManagementResponse> {
  const { principal } = auth;
  const method = req.request.method.toUpperCase();
  const route = ROUTES.find((r) => r.method === method && r.pattern.test(req.path));
  if (!route)
    return failure(new KeygateError('NOT_FOUND', { message: 'No such API key endpoint' }));
  const denied =
    checkAdmin(keygate, principal) ??
    crossSiteRefusal(principal, req.request, req.origin, keygate.trustedOrigins) ??
    (TAKES_BODY.has(route.action) ? mediaTypeRefusal(req.request.headers) : null);
  if (denied) return refused(denied);
  const actor: Actor = {
    id: principal.id,
    ...(principal.kind === 'key'
      ? {
          name: principal.key.name,
          start: principal.key.start,
          via: principal.pageSession ? 'page_session' : 'key',
        }
      : { via: 'session' }),
    ownerId: principal.ownerId,
    bounds: boundsOf(principal),
    ip: auth.context.ip,
    userAgent: auth.context.userAgent,
    method: auth.context.method,
    path: auth.context.path,
    requestId: requestIdOf(auth.context),
  };
  const id = route.pattern.exec(req.path)?.[1] ?? '';
  const query = queryOf(req.request.url);
  const body = async () => parseBody(await req.body(), req.request.headers) as never;
  const { keys } = keygate;
  try {
    switch (route.action) {
      case 'me':
        return ok(describePrincipal(principal));
      case 'list': {
        const limit = intParam(query, 'limit', 1_000);
        const after = cursorParam(query);
        const includeRevoked = query.get('include_revoked') === 'true';
        return ok(await keys.list({ limit, after, includeRevoked }, actor));
      }
      case 'create': {
        const issued = await keys.create(await body(), actor);
        return ok({ ...issued.key, secret: issued.secret }, 201);
      }
      case 'get':
        return ok(await keys.get(id, actor));
      case 'update':
        return ok(await keys.update(id, await body(), actor));
      case 'rotate': {
        const issued = await keys.rotate(id, await body(), actor);
        return ok({ ...issued.key, secret: issued.secret });
      }
      case 'revoke':
        await keys.revoke(id, actor);
        return {
          ok: true,
          status: 200,
          body: { success: true, message: 'API key revoked successfully' },
          headers: {},
        };
      case 'events': {
        await keys.get(id, actor);
        const limit = intParam(query, 'limit', 1_000) ?? 100;
        return ok((await keygate.auditReader?.query({ keyId: id, limit })) ?? []);
      }
      case 'usage':
        return ok(await keys.usage(id, usageParams(query), actor));
      case 'leaks': {
        const report = await parseBody(await req.body(), req.request.headers, MAX_LEAK_REPORT_BODY);
        return ok(await answerAdminLeakReport(keygate, report, actor));
      }
      case 'webhooks':
        return ok(await webhooksOf(keygate).listEndpoints(principal.ownerId));
      case 'webhook-create': {
        const input = await body();
        const unsafe = findUnsafeText(input);
        if (unsafe) throw invalid(unsafe);
        return ok(await webhooksOf(keygate).createEndpoint(principal.ownerId, input), 201);
      }
      case 'webhook-delete':
        if (!(await webhooksOf(keygate).deleteEndpoint(principal.ownerId, id))) {
          throw new KeygateError('NOT_FOUND', { message: 'Webhook endpoint not found' });
        }
        return {
          ok: true,
          status: 200,
          body: { success: true, message: 'Webhook endpoint deleted' },
          headers: {},
        };
      case 'webhook-deliveries': {
        const endpointId = query.get('endpoint') ?? undefined;
        const keyId = query.get('key') ?? undefined;
        if (endpointId !== undefined && !KEY_ID.test(endpointId))
          throw invalid('endpoint must be an endpoint id');
        if (keyId !== undefined && !KEY_ID.test(keyId)) throw invalid('key must be a key id');
        const limit = intParam(query, 'limit', 100);
        return ok(
          await webhooksOf(keygate).listDeliveries(principal.ownerId, { endpointId, keyId, limit }),
        );
      }
    }
  } catch (error) {
    if (isKeygateError(error)) return refused(error);
    return unavailable(keygate, error);
  }
}

function webhooksOf(keygate: Keygate): WebhookRegistry {
  if (!keygate.webhooks) {
    throw new KeygateError('NOT_FOUND', { message: 'Webhooks are not configured' });
  }
  return keygate.webhooks;
}

function unavailable(keygate: Keygate, error: unknown): ManagementResponse {
  if (isKeygateError(error)) return refused(error);
  // The store's circuit breaker logged once when it opened; the calls it refuses are not logged.
  if (!(error instanceof BackendUnavailableError)) {
    keygate.logger.error('[keygate] key management failed:', error);
  }
  const retryAfter = error instanceof BackendUnavailableError ? error.retryAfterSeconds : 1;
  return failure(new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' }), {
    'Retry-After': String(retryAfter),
  });
}

/** A refusal; when the body was left unread (415) or read only in part (too large), the connection closes: its bytes cannot carry the next request. */
function refused(error: KeygateError): ManagementResponse {
  const answer = failure(error);
  if (error.code === 'UNSUPPORTED_MEDIA_TYPE' || error.reason === 'body_too_large') {
    answer.headers.Connection = 'close';
  }
  return answer;
}
