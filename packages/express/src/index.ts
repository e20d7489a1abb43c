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
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export * from '@keygate/core';

declare global {
  namespace Express {
    interface Request {
      /** Who the request acts as: the verified key, or the browser session (set by `apiKeyAuth`). */
      apiKey?: Principal;
    }
  }
}

interface Authenticated {
  keygate: Keygate;
  request: KeygateRequest;
}
const authenticated = new WeakMap<Request, Authenticated>();

export type ApiKeyAuthOptions = KeygateInput;

/** The client IP is `req.ip`, so Express's `trust proxy` setting decides whether proxies count. */
function toRequest(req: Request): KeygateRequest {
  return {
    method: req.method,
    url: req.originalUrl,
    headers: nodeHeaders(req.headersDistinct),
    ip: req.ip,
  };
}

function render(res: Response, decision: Extract<Decision, { ok: false }>): void {
  const failure = renderFailure(decision.error, decision.headers);
  res.status(failure.status).set(failure.headers).json(failure.body);
}

/** Authenticates every request; sets `req.apiKey` and the rate-limit headers, or answers the failure. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): RequestHandler {
  const keygate = toKeygate(options);
  return (req, res, next) => {
    const request = toRequest(req);
    keygate.authenticate(request).then((decision) => {
      if (!decision.ok) return render(res, decision);
      res.set(decision.headers);
      req.apiKey = decision.principal;
      authenticated.set(req, { keygate, request });
      next();
    }, next);
  };
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(spec: ScopeSpec, options: GuardOptions<Request> = {}): RequestHandler {
  const guard = prepareGuard(spec, options);
  return (req, res, next) => {
    const auth = authenticated.get(req);
    if (!auth)
      return render(res, { ok: false, error: new KeygateError('AUTH_REQUIRED'), headers: {} });
    const resource = guard.resource(req, (name) => {
      const value: unknown = req.params[name];
      return typeof value === 'string' ? value : undefined;
    });
    const decision = auth.keygate.authorize(req.apiKey, guard.requirement, auth.request, resource);
    if (!decision.ok) return render(res, decision);
    next();
  };
}

/**
 * The path below the mount point as sent, not percent-decoded. (`req.path` on Express 4 has a
 * leading `//` collapsed, so `/v1/api-keys//ID` would read as the key `ID`.)
 */
function pathBelowMount(req: Request): string {
  const below = req.originalUrl.slice(req.baseUrl.length);
  const query = below.indexOf('?');
  return (query === -1 ? below : below.slice(0, query)) || '/';
}

/** The management API, to mount with `app.use('/v1/api-keys', apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(options: ApiKeyAuthOptions): RequestHandler {
  const keygate = toKeygate(options);
  const authenticate = apiKeyAuth({ keygate });
  const manage = (req: Request, res: Response, next: NextFunction): void => {
    handleManagementRequest(keygate, {
      request: authenticated.get(req)?.request ?? toRequest(req),
      path: pathBelowMount(req),
      origin: `${req.protocol}://${req.get('host')}`,
      // A body parser mounted before us has already read the stream.
      body: async () =>
        req.body !== undefined
          ? req.body
          : readBody(req, req.headers['content-length'], MAX_MANAGEMENT_BODY),
      principal: req.apiKey,
    }).then((response) => {
      res.status(response.status).set(response.headers).json(response.body);
    }, next);
  };
  return (req, res, next) =>
    req.apiKey ? manage(req, res, next) : authenticate(req, res, () => manage(req, res, next));
}

/** The key-management page, to mount with `app.use('/dashboard', keyDashboard({ keygate }))`. */
export function keyDashboard(options: { keygate: Keygate } & DashboardOptions): RequestHandler {
  const { keygate, ...rest } = options;
  const handle = createDashboard(keygate, rest);
  return (req, res) => {
    const response = handle({ method: req.method, mountPath: req.baseUrl, path: req.path });
    res.status(response.status).set(response.headers).send(response.body);
  };
}
