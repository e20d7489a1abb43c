import { crossSiteRefusal, mediaTypeRefusal } from './csrf.js';
import { boundsOf } from './delegation.js';
import { BodyTooLargeError, KeygateError, KeyManagementError } from './errors.js';
import type { Keygate } from './keygate.js';
import type { Actor } from './keys.js';
import type { KeygateRequest, Principal } from './types.js';

export interface ManagementRequest {
  /**
   * The request as the adapter gave it to `authenticate()` (the same object, so key changes are
   * audited with its request id): method, headers and the query string are read from it.
   */
  request: KeygateRequest;
  /**
   * Path below the mount point exactly as sent, not percent-decoded: `/`, `/key_1`,
   * `/key_1/rotate`, `/key_1/events`, `/key_1/usage`. (Decoded, `/key_1%2Frotate` would reach
   * the rotate route.)
   */
  path: string;
  /** The request's own origin as the framework sees it (`https://api.example.com`), for sessions' CSRF check. */
  origin: string;
  /** Reads the body (called only by routes that take one): JSON text, an already-parsed object, or `undefined`. */
  body: () => Promise<unknown>;
  principal: Principal | undefined;
}

export interface ManagementResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** Largest management request body accepted, in bytes. */
export const MAX_MANAGEMENT_BODY = 64 * 1024;

const ID = '([A-Za-z0-9_-]{1,200})';
const ROUTES: Array<{ method: string; pattern: RegExp; action: Action }> = [
  { method: 'GET', pattern: /^\/?$/, action: 'list' },
  // Before `/:id`: key ids are `key_…`, so `me` never names a key.
  { method: 'GET', pattern: /^\/me\/?$/, action: 'me' },
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
  | 'list'
  | 'create'
  | 'get'
  | 'update'
  | 'revoke'
  | 'rotate'
  | 'events'
  | 'usage';
const TAKES_BODY: ReadonlySet<Action> = new Set(['create', 'update', 'rotate']);
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

function failure(error: KeygateError): ManagementResponse {
  const headers: Record<string, string> = {};
  if (error.wwwAuthenticate) headers['WWW-Authenticate'] = error.wwwAuthenticate;
  return { status: error.status, body: error.toJSON(), headers };
}

function ok(data: unknown, status = 200): ManagementResponse {
  return { status, body: { success: true, data }, headers: {} };
}

/** Only owners/admins of an organisation manage its keys: a secret key with the admin scope, or an admin session. */
function checkAdmin(keygate: Keygate, principal: Principal | undefined): KeygateError | null {
  if (!principal) return new KeygateError('AUTH_REQUIRED');
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

function parseBody(body: unknown): unknown {
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'string') return body;
  if (body.length > MAX_MANAGEMENT_BODY) {
    throw new BodyTooLargeError();
  }
  try {
    return JSON.parse(body);
  } catch {
    throw new KeyManagementError('INVALID_REQUEST', 'the request body is not valid JSON');
  }
}

function intParam(query: URLSearchParams, name: string, max: number): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new KeyManagementError('INVALID_REQUEST', `${name} must be an integer from 1 to ${max}`);
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
  return { ...common, name, start, expiresAt, restrictions, rateLimit };
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
  if (!KEY_ID.test(after))
    throw new KeyManagementError('INVALID_REQUEST', 'after must be a key id');
  return after;
}

/** The management API (`/v1/api-keys`) as one function, so every adapter mounts the same behaviour. */
export async function handleManagementRequest(
  keygate: Keygate,
  req: ManagementRequest,
): Promise<ManagementResponse> {
  const method = req.request.method.toUpperCase();
  const route = ROUTES.find((r) => r.method === method && r.pattern.test(req.path));
  if (!route) {
    return failure(new KeygateError('NOT_FOUND', { message: 'No such API key endpoint' }));
  }
  const denied = checkAdmin(keygate, req.principal);
  if (denied) return failure(denied);
  const principal = req.principal!;
  const crossSite = crossSiteRefusal(principal, req.request, req.origin, keygate.trustedOrigins);
  if (crossSite) return failure(crossSite);
  if (TAKES_BODY.has(route.action)) {
    const unsupported = mediaTypeRefusal(req.request.headers);
    if (unsupported) {
      const refused = failure(unsupported);
      // The body was not read: its bytes cannot be left to carry the next request.
      refused.headers.Connection = 'close';
      return refused;
    }
  }
  const actor: Actor = {
    id: principal.id,
    ownerId: principal.ownerId,
    bounds: boundsOf(principal),
    ...keygate.auditContext(req.request),
  };
  const id = route.pattern.exec(req.path)?.[1] ?? '';
  const query = queryOf(req.request.url);
  try {
    switch (route.action) {
      case 'me':
        return ok(describePrincipal(principal));
      case 'list': {
        const limit = intParam(query, 'limit', 1_000);
        const after = cursorParam(query);
        const includeRevoked = query.get('include_revoked') === 'true';
        return ok(await keygate.keys.list({ limit, after, includeRevoked }, actor));
      }
      case 'create': {
        const issued = await keygate.keys.create(parseBody(await req.body()) as never, actor);
        return ok({ ...issued.key, secret: issued.secret }, 201);
      }
      case 'get':
        return ok(await keygate.keys.get(id, actor));
      case 'update':
        return ok(await keygate.keys.update(id, parseBody(await req.body()) as never, actor));
      case 'rotate': {
        const issued = await keygate.keys.rotate(id, parseBody(await req.body()) as never, actor);
        return ok({ ...issued.key, secret: issued.secret });
      }
      case 'revoke':
        await keygate.keys.revoke(id, actor);
        return {
          status: 200,
          body: { success: true, message: 'API key revoked successfully' },
          headers: {},
        };
      case 'events': {
        await keygate.keys.get(id, actor);
        const limit = intParam(query, 'limit', 1_000) ?? 100;
        const events = (await keygate.auditReader?.query({ keyId: id, limit })) ?? [];
        return ok(events);
      }
      case 'usage':
        return ok(await keygate.keys.usage(id, usageParams(query), actor));
    }
  } catch (error) {
    if (error instanceof KeyManagementError) {
      const refused = failure(
        new KeygateError(error.code, {
          message: error.code === 'NOT_FOUND' ? 'API key not found' : error.message,
          reason: error.code === 'FORBIDDEN' ? 'delegation' : undefined,
        }),
      );
      // The rest of the body is still on the connection: it cannot carry another request.
      if (error instanceof BodyTooLargeError) refused.headers.Connection = 'close';
      return refused;
    }
    keygate.logger.error('[keygate] key management failed:', error);
    return failure(new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' }));
  }
}
