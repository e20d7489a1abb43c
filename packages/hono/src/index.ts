import type { IncomingMessage, ServerResponse } from 'node:http';
import * as core from '@keygate/core';
import { type Context, Hono, type MiddlewareHandler, type Next } from 'hono';
import type { GetConnInfo } from 'hono/conninfo';
import { HTTPException } from 'hono/http-exception';
import type {} from 'hono/request-id';
import { basePath } from 'hono/route';
import type { ContentfulStatusCode as Status } from 'hono/utils/http-status';

export * from '@keygate/core';

/** `apiKey`: who the request acts as (key or session); `keygate`: its authentication, which `requireScope` checks. */
export interface ApiKeyVariables {
  apiKey: core.Principal;
  keygate: core.Authentication;
}
declare module 'hono' {
  interface ContextVariableMap extends ApiKeyVariables {}
}

/** `getIp`: the client IP; default the socket's under `@hono/node-server`, else see `clientIp()`. */
export type ApiKeyAuthOptions = core.KeygateInput & { getIp?: (c: Context) => string | undefined };

/** `@hono/node-server` puts Node's request and response on `c.env`. */
type NodeEnv = { incoming?: IncomingMessage; outgoing?: ServerResponse };
const node = (c: Context) => (c.env ?? {}) as NodeEnv;

/** `getIp` on any runtime (`getConnInfo` of `hono/bun`, ...), believing `X-Forwarded-For` of `trustProxy` only (default 0). */
export const clientIp = (o: { trustProxy?: core.TrustProxy; getConnInfo?: GetConnInfo } = {}) =>
  core.clientIpOf<Context>(
    o.trustProxy,
    (c) =>
      o.getConnInfo ? o.getConnInfo(c).remote.address : node(c).incoming?.socket.remoteAddress,
    (c) => c.req.header('x-forwarded-for'),
  );

function prepare({ getIp = clientIp(), ...rest }: ApiKeyAuthOptions) {
  const toRequest = (c: Context): core.KeygateRequest => {
    const { incoming } = node(c); // Node's headers as they are: Fetch `Headers` cost more to build.
    const headers = incoming ? core.nodeHeaders(incoming.rawHeaders) : c.req.raw.headers;
    const { method, url } = c.req;
    return { method, url, headers, ip: getIp(c), requestId: c.get('requestId') };
  };
  return { keygate: core.toKeygate(rest), toRequest };
}

/** A failure as Hono's `bearerAuth` answers one: an `HTTPException` with the response, seen by `app.onError`. */
const reject = ({ status, body, headers }: core.Answer) =>
  new HTTPException(status as Status, { res: Response.json(body, { status, headers }) });

/**
 * Authenticates every request; sets `c.get('apiKey')` and the rate-limit headers, or throws the
 * failure. On Node the headers go on Node's response, under whatever response the app builds
 * (Fetch `Headers` validate and sort each field); elsewhere on Hono's, and again on a `Response`
 * the handler built itself. A decision made at once goes on when the event loop's turn ends,
 * with the others of that turn (`withTurn`): under load that costs far less than answering each
 * request as it is read.
 */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): MiddlewareHandler {
  const { keygate, toRequest } = prepare(options);
  return (c, next) =>
    core.withTurn(keygate.decide(toRequest(c))).then((decision) => admit(c, next, decision));
}

function admit(c: Context, next: Next, decision: core.Decision): Promise<void> {
  if (!decision.ok) throw reject(decision);
  c.set('apiKey', decision.principal);
  c.set('keygate', decision);
  const { headers } = decision;
  const out = node(c).outgoing;
  if (out) {
    for (const name in headers) out.setHeader(name, headers[name]!);
    return next();
  }
  for (const name in headers) c.header(name, headers[name]);
  return next().then(() => {
    if (c.res.headers.has('X-RateLimit-Limit')) return;
    for (const name in headers) c.header(name, headers[name]);
  });
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(spec: core.ScopeSpec, options: core.GuardOptions<Context> = {}) {
  const guard = core.prepareGuard(spec, options);
  return ((c, next) => {
    const failure = guard.check(c.get('keygate'), c, (name) => c.req.param(name));
    if (failure) throw reject(failure);
    return next();
  }) satisfies MiddlewareHandler;
}

/** The management API, to mount with `app.route('/v1/api-keys', apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(options: ApiKeyAuthOptions): Hono {
  const { keygate, toRequest } = prepare(options);
  return new Hono().all('*', async (c) => {
    const response = await core.handleManagementRequest(keygate, {
      request: toRequest(c),
      authentication: c.get('keygate'),
      // The path as sent: Hono's is decoded (`key_1%2Frotate` would be `key_1/rotate`).
      path: core.pathBelowMount(node(c).incoming?.url ?? c.req.url, basePath(c)),
      origin: new URL(c.req.url).origin,
      // A middleware before may have read the body: Hono keeps it.
      body: () => (c.req.raw.bodyUsed ? c.req.text() : c.req.raw.body),
    });
    if (!response.ok) throw reject(response);
    return c.json(response.body, response.status as Status, response.headers);
  });
}
