import {
  bodyTooLarge,
  createDashboard,
  type DashboardOptions,
  type Decision,
  type GuardOptions,
  handleManagementRequest,
  type Keygate,
  KeygateError,
  type KeygateInput,
  type KeygateRequest,
  MAX_MANAGEMENT_BODY,
  type Principal,
  prepareGuard,
  renderFailure,
  type ScopeSpec,
  toKeygate,
} from '@keygate/core';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { basePath } from 'hono/route';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export * from '@keygate/core';

// The request as the core saw it, so a guard's audit record shares the authentication's context.
const requests = new WeakMap<Request, KeygateRequest>();

export interface ApiKeyVariables {
  /** Who the request acts as: the verified key, or the browser session. */
  apiKey: Principal;
  keygate: Keygate;
}

declare module 'hono' {
  interface ContextVariableMap extends ApiKeyVariables {}
}

export interface HonoAdapterOptions {
  /**
   * Client IP for restrictions, audit and the failed-authentication guard. Default: the socket
   * address under `@hono/node-server`. Behind a proxy you trust, read its header here.
   */
  getIp?: (c: Context) => string | undefined;
}

export type ApiKeyAuthOptions = KeygateInput & HonoAdapterOptions;

function defaultIp(c: Context): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress;
}

function toRequest(c: Context, getIp: (c: Context) => string | undefined): KeygateRequest {
  return { method: c.req.method, url: c.req.url, headers: c.req.raw.headers, ip: getIp(c) };
}

function render(c: Context, decision: Extract<Decision, { ok: false }>): Response {
  const failure = renderFailure(decision.error, decision.headers);
  return c.json(failure.body, failure.status as ContentfulStatusCode, failure.headers);
}

function splitOptions(options: ApiKeyAuthOptions): {
  keygate: Keygate;
  getIp: (c: Context) => string | undefined;
} {
  const { getIp = defaultIp, ...rest } = options;
  return { keygate: toKeygate(rest), getIp };
}

/** Authenticates every request; sets `c.get('apiKey')` and the rate-limit headers, or answers the failure. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): MiddlewareHandler {
  const { keygate, getIp } = splitOptions(options);
  return async (c, next) => {
    const request = toRequest(c, getIp);
    requests.set(c.req.raw, request);
    const decision = await keygate.authenticate(request);
    if (!decision.ok) return render(c, decision);
    c.set('apiKey', decision.principal);
    c.set('keygate', keygate);
    // Set before the response exists: setting a header on a finished response rebuilds it.
    const headers = Object.entries(decision.headers);
    for (const [name, value] of headers) c.header(name, value);
    await next();
    // A handler that returned its own Response did not take them.
    if (headers.length > 0 && !c.res.headers.has(headers[0]![0])) {
      for (const [name, value] of headers) c.header(name, value);
    }
  };
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(
  spec: ScopeSpec,
  options: GuardOptions<Context> = {},
): MiddlewareHandler {
  const guard = prepareGuard(spec, options);
  return async (c, next) => {
    const keygate = c.get('keygate');
    const request = requests.get(c.req.raw);
    if (!keygate || !request) {
      return render(c, { ok: false, error: new KeygateError('AUTH_REQUIRED'), headers: {} });
    }
    const resource = guard.resource(c, (name) => c.req.param(name));
    const decision = keygate.authorize(c.get('apiKey'), guard.requirement, request, resource);
    if (!decision.ok) return render(c, decision);
    await next();
  };
}

/** The management API, to mount with `app.route('/v1/api-keys', apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(options: ApiKeyAuthOptions): Hono {
  const { keygate, getIp } = splitOptions(options);
  const authenticate = apiKeyAuth({ keygate, getIp });
  const handler = async (c: Context): Promise<Response> => {
    const response = await handleManagementRequest(keygate, {
      method: c.req.method,
      path: `/${c.req.param('rest') ?? ''}`,
      query: new URL(c.req.url).searchParams,
      body: async () => {
        const length = c.req.header('content-length');
        if (length !== undefined && Number(length) > MAX_MANAGEMENT_BODY) throw bodyTooLarge();
        return c.req.text();
      },
      principal: c.get('apiKey'),
      ip: getIp(c) ?? null,
      userAgent: c.req.header('user-agent') ?? null,
      request: requests.get(c.req.raw),
    });
    return c.json(response.body, response.status as ContentfulStatusCode, response.headers);
  };
  const routes = new Hono();
  routes.use('*', async (c, next) => (c.get('apiKey') ? next() : authenticate(c, next)));
  routes.all('/', handler);
  routes.all('/:rest{.*}', handler);
  return routes;
}

/** The key-management page, to mount with `app.route('/dashboard', keyDashboard({ keygate }))`. */
export function keyDashboard(options: { keygate: Keygate } & DashboardOptions): Hono {
  const { keygate, ...rest } = options;
  const handle = createDashboard(keygate, rest);
  const page = new Hono();
  page.all('*', (c) => {
    const mountPath = basePath(c);
    const response = handle({
      method: c.req.method,
      mountPath,
      path: c.req.path.slice(mountPath.length),
    });
    return c.body(response.body, response.status as ContentfulStatusCode, response.headers);
  });
  return page;
}
