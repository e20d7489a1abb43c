import {
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
  nodeHeaders,
  type Principal,
  prepareGuard,
  readBody,
  renderFailure,
  type ScopeSpec,
  toKeygate,
} from '@keygate/core';
import type { Context, Middleware, Next } from 'koa';

export * from '@keygate/core';

/** What `apiKeyAuth` puts on `ctx.state`. */
export interface ApiKeyState {
  /** Who the request acts as: the verified key, or the browser session. */
  apiKey: Principal;
}

interface Authenticated {
  keygate: Keygate;
  request: KeygateRequest;
}
const authenticated = new WeakMap<Context, Authenticated>();

export type ApiKeyAuthOptions = KeygateInput;

/** The client IP is `ctx.ip`, so Koa's `app.proxy` setting decides whether proxies count. */
function toRequest(ctx: Context): KeygateRequest {
  return {
    method: ctx.method,
    url: ctx.originalUrl,
    headers: nodeHeaders(ctx.req.headersDistinct),
    ip: ctx.ip,
  };
}

function render(ctx: Context, decision: Extract<Decision, { ok: false }>): void {
  const failure = renderFailure(decision.error, decision.headers);
  ctx.status = failure.status;
  ctx.set(failure.headers);
  ctx.body = failure.body;
}

/** Authenticates every request; sets `ctx.state.apiKey` and the rate-limit headers, or answers the failure. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): Middleware<Partial<ApiKeyState>> {
  const keygate = toKeygate(options);
  return async (ctx, next) => {
    const request = toRequest(ctx);
    const decision = await keygate.authenticate(request);
    if (!decision.ok) return render(ctx, decision);
    ctx.set(decision.headers);
    ctx.state.apiKey = decision.principal;
    authenticated.set(ctx, { keygate, request });
    await next();
  };
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(
  spec: ScopeSpec,
  options: GuardOptions<Context> = {},
): Middleware<Partial<ApiKeyState>> {
  const guard = prepareGuard(spec, options);
  return async (ctx, next) => {
    const auth = authenticated.get(ctx);
    if (!auth)
      return render(ctx, { ok: false, error: new KeygateError('AUTH_REQUIRED'), headers: {} });
    const params = (ctx as Context & { params?: Record<string, string> }).params ?? {};
    const resource = guard.resource(ctx, (name) => params[name]);
    const decision = auth.keygate.authorize(
      ctx.state.apiKey,
      guard.requirement,
      auth.request,
      resource,
    );
    if (!decision.ok) return render(ctx, decision);
    await next();
  };
}

export interface ApiKeyRoutesOptions {
  /** Where the management API answers. Default `/v1/api-keys`. */
  prefix?: string;
}

/** The management API as one middleware: `app.use(apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(
  options: ApiKeyAuthOptions & ApiKeyRoutesOptions,
): Middleware<Partial<ApiKeyState>> {
  const { prefix = '/v1/api-keys', ...rest } = options;
  const keygate = toKeygate(rest);
  const authenticate = apiKeyAuth({ keygate });
  const manage = async (ctx: Context): Promise<void> => {
    const response = await handleManagementRequest(keygate, {
      request: authenticated.get(ctx)?.request ?? toRequest(ctx),
      // Below the mount point, not percent-decoded.
      path: ctx.path.slice(prefix.length) || '/',
      origin: `${ctx.protocol}://${ctx.host}`,
      // A body parser mounted before us has already read the stream.
      body: async () => {
        const parsed = (ctx.request as { body?: unknown }).body;
        return parsed !== undefined
          ? parsed
          : readBody(ctx.req, ctx.get('content-length') || undefined, MAX_MANAGEMENT_BODY);
      },
      principal: ctx.state.apiKey,
    });
    ctx.status = response.status;
    ctx.set(response.headers);
    ctx.body = response.body;
  };
  return async (ctx, next: Next) => {
    if (ctx.path !== prefix && !ctx.path.startsWith(`${prefix}/`)) return next();
    if (ctx.state.apiKey) return manage(ctx);
    await authenticate(ctx, () => manage(ctx));
  };
}

export interface KeyDashboardOptions extends DashboardOptions {
  keygate: Keygate;
  /** Where the page answers. Default `/dashboard`. */
  prefix?: string;
}

/** The key-management page as one middleware: `app.use(keyDashboard({ keygate, prefix: '/dashboard' }))`. */
export function keyDashboard(options: KeyDashboardOptions): Middleware {
  const { keygate, prefix = '/dashboard', ...rest } = options;
  const handle = createDashboard(keygate, rest);
  return async (ctx, next) => {
    if (ctx.path !== prefix && !ctx.path.startsWith(`${prefix}/`)) return next();
    const response = handle({
      method: ctx.method,
      mountPath: prefix,
      path: ctx.path.slice(prefix.length),
    });
    ctx.status = response.status;
    ctx.set(response.headers);
    ctx.body = response.body;
  };
}
