import * as core from '@keygate/core';
import type { Context, Middleware } from 'koa';

export * from '@keygate/core';
// Node only, as this adapter is: shutting its server down on time.
export * from '@keygate/core/node';

/** What `apiKeyAuth` puts on `ctx.state`. */
export interface ApiKeyState {
  /** Who the request acts as: the verified key, or the browser session. */
  apiKey: core.Principal;
  /** The request's authentication (principal, rate-limit headers), which `requireScope` checks. */
  keygate: core.Authentication;
}

export type ApiKeyAuthOptions = core.KeygateInput;

/** The client IP is `ctx.ip`, so Koa's `app.proxy` setting decides whether proxies count. */
const toRequest = (ctx: Context): core.KeygateRequest => ({
  method: ctx.method,
  url: ctx.originalUrl,
  headers: core.nodeHeaders(ctx.req.rawHeaders),
  ip: ctx.ip,
});

const send = (ctx: Context, { status, headers, body }: core.Answer): void => {
  ctx.status = status;
  ctx.set(headers);
  ctx.body = body;
};

/** Authenticates every request; sets `ctx.state.apiKey` and the rate-limit headers, or answers the failure. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): Middleware<Partial<ApiKeyState>> {
  const keygate = core.toKeygate(options);
  return async (ctx, next) => {
    const decision = await core.withTurn(keygate.decide(toRequest(ctx)));
    if (!decision.ok) return send(ctx, decision);
    ctx.set(decision.headers);
    ctx.state.apiKey = decision.principal;
    ctx.state.keygate = decision;
    await next();
  };
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(
  spec: core.ScopeSpec,
  options: core.GuardOptions<Context> = {},
): Middleware<Partial<ApiKeyState>> {
  const guard = core.prepareGuard(spec, options);
  return async (ctx, next) => {
    const params = (ctx as Context & { params?: Record<string, string> }).params ?? {};
    const failure = guard.check(ctx.state.keygate, ctx, (name) => params[name]);
    if (failure) return send(ctx, failure);
    await next();
  };
}

/** The management API as one middleware: `app.use(apiKeyRoutes({ keygate, prefix? }))` (default prefix `/v1/api-keys`). */
export function apiKeyRoutes(
  options: ApiKeyAuthOptions & { prefix?: string },
): Middleware<Partial<ApiKeyState>> {
  const { prefix = '/v1/api-keys', ...rest } = options;
  const keygate = core.toKeygate(rest);
  return async (ctx, next) => {
    // Below the mount point, not percent-decoded.
    const path = core.pathUnder(ctx.path, prefix);
    if (path === null) return next();
    const response = await core.handleManagementRequest(keygate, {
      request: toRequest(ctx),
      authentication: ctx.state.keygate,
      path,
      origin: `${ctx.protocol}://${ctx.host}`,
      // A body parser mounted before us has read the stream already.
      body: () => (ctx.request as { body?: unknown }).body ?? ctx.req,
    });
    send(ctx, response);
  };
}
