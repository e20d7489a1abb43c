import {
  createDashboard,
  type DashboardOptions,
  type Decision,
  type GuardOptions,
  handleManagementRequest,
  type Keygate,
  KeygateConfigError,
  KeygateError,
  type KeygateInput,
  type KeygateRequest,
  MAX_MANAGEMENT_BODY,
  type Principal,
  pathOf,
  prepareGuard,
  readBody,
  renderFailure,
  type ScopeSpec,
  toKeygate,
} from '@keygate/core';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { GetConnInfo } from 'hono/conninfo';
import { basePath } from 'hono/route';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import proxyaddr from 'proxy-addr';

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
   * address under `@hono/node-server`. On another runtime, or behind a proxy, use `clientIp()`.
   */
  getIp?: (c: Context) => string | undefined;
}

export type ApiKeyAuthOptions = KeygateInput & HonoAdapterOptions;

/** `@hono/node-server` puts Node's request on `c.env.incoming`. */
function nodeRequest(
  c: Context,
): { url?: string; socket?: { remoteAddress?: string } } | undefined {
  return (c.env as { incoming?: { url?: string; socket?: { remoteAddress?: string } } } | undefined)
    ?.incoming;
}

function defaultIp(c: Context): string | undefined {
  return nodeRequest(c)?.socket?.remoteAddress;
}

export interface ClientIpOptions {
  /**
   * The proxies in front of the app whose `X-Forwarded-For` entries are believed, as Express's
   * `trust proxy`: a number of hops, or their addresses and CIDR ranges. The client IP is the
   * rightmost address that is not a trusted proxy; a client cannot choose it by sending
   * `X-Forwarded-For` itself. Default `0`: the connection's own address.
   */
  trustProxy?: number | readonly string[];
  /**
   * The runtime's `getConnInfo` (`@hono/node-server/conninfo`, `hono/bun`, `hono/deno`,
   * `hono/cloudflare-workers`, `hono/aws-lambda`, ...). Default: the socket address under
   * `@hono/node-server`.
   */
  getConnInfo?: GetConnInfo;
}

/**
 * The client IP as `getIp` for `apiKeyAuth` and `apiKeyRoutes`, on any runtime, behind trusted
 * proxies or none (Hono has no proxy setting of its own; this follows Express's, with its library).
 */
export function clientIp(options: ClientIpOptions = {}): (c: Context) => string | undefined {
  const { trustProxy = 0, getConnInfo } = options;
  let trust: (address: string, hop: number) => boolean;
  if (typeof trustProxy === 'number') {
    if (!Number.isInteger(trustProxy) || trustProxy < 0) {
      throw new KeygateConfigError('INVALID_OPTION', 'trustProxy must be a whole number of hops');
    }
    trust = (_address, hop) => hop < trustProxy;
  } else {
    try {
      trust = proxyaddr.compile([...trustProxy]);
    } catch (error) {
      throw new KeygateConfigError('INVALID_OPTION', `trustProxy: ${(error as Error).message}`);
    }
  }
  const connection = getConnInfo ? (c: Context) => getConnInfo(c).remote.address : defaultIp;
  return (c) => {
    const address = connection(c);
    if (address === undefined || trustProxy === 0) return address;
    const forwarded = c.req.header('x-forwarded-for');
    if (forwarded === undefined) return address;
    const request = {
      headers: { 'x-forwarded-for': forwarded },
      socket: { remoteAddress: address },
    };
    return proxyaddr(request as unknown as Parameters<typeof proxyaddr>[0], trust);
  };
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

/**
 * The path below the mount point as sent: Hono decodes route params (`key_1%2Frotate` would be
 * `key_1/rotate`), so the segments after the mount's are cut from the raw path instead.
 */
function pathBelowMount(c: Context): string {
  const mount = c.req.routePath.replace(/\/:rest\{\.\*\}$/, '');
  const raw = pathOf(nodeRequest(c)?.url ?? c.req.url);
  return `/${raw.split('/').slice(mount.split('/').length).join('/')}`;
}

/** The management API, to mount with `app.route('/v1/api-keys', apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(options: ApiKeyAuthOptions): Hono {
  const { keygate, getIp } = splitOptions(options);
  const authenticate = apiKeyAuth({ keygate, getIp });
  const handler = async (c: Context): Promise<Response> => {
    const response = await handleManagementRequest(keygate, {
      request: requests.get(c.req.raw) ?? toRequest(c, getIp),
      path: pathBelowMount(c),
      origin: new URL(c.req.url).origin,
      // A middleware mounted before us may have read the body already: Hono keeps it.
      body: () =>
        c.req.raw.bodyUsed
          ? c.req.text()
          : readBody(
              c.req.raw.body as AsyncIterable<Uint8Array> | null,
              c.req.header('content-length'),
              MAX_MANAGEMENT_BODY,
            ),
      principal: c.get('apiKey'),
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
