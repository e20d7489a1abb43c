import * as core from '@keygate/core';
import type { Request, RequestHandler, Response } from 'express';

export * from '@keygate/core';
// Node only, as this adapter is: shutting its server down on time.
export * from '@keygate/core/node';

declare global {
  namespace Express {
    interface Request {
      /** Who the request acts as: the verified key, or the browser session (set by `apiKeyAuth`). */
      apiKey?: core.Principal;
      /** The request's authentication (principal, rate-limit headers), which `requireScope` checks. */
      keygate?: core.Authentication;
    }
  }
}

export type ApiKeyAuthOptions = core.KeygateInput;

/** The client IP is `req.ip`, so Express's `trust proxy` setting decides whether proxies count. */
const toRequest = (req: Request): core.KeygateRequest => ({
  method: req.method,
  url: req.originalUrl,
  headers: core.nodeHeaders(req.rawHeaders),
  ip: req.ip,
});

const send = (res: Response, { status, headers, body }: core.Answer): void => {
  res.status(status).set(headers).json(body);
};

/** Authenticates every request; sets `req.apiKey` and the rate-limit headers, or answers the failure. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): RequestHandler {
  const keygate = core.toKeygate(options);
  return (req, res, next) => {
    const admit = (decision: core.Decision) => {
      if (!decision.ok) return send(res, decision);
      res.set(decision.headers);
      req.apiKey = decision.principal;
      req.keygate = decision;
      next();
    };
    core
      .withTurn(keygate.decide(toRequest(req)))
      .then(admit)
      .catch(next);
  };
}

/** Lets the request through only when its key holds `scope` (and the resource, when one is named). */
export function requireScope(
  spec: core.ScopeSpec,
  options: core.GuardOptions<Request> = {},
): RequestHandler {
  const guard = core.prepareGuard(spec, options);
  return (req, res, next) => {
    const failure = guard.check(req.keygate, req, (name) => {
      const value: unknown = req.params[name];
      return typeof value === 'string' ? value : undefined;
    });
    if (failure) return send(res, failure);
    next();
  };
}

/** The management API, to mount with `app.use('/v1/api-keys', apiKeyRoutes({ keygate }))`. */
export function apiKeyRoutes(options: ApiKeyAuthOptions): RequestHandler {
  const keygate = core.toKeygate(options);
  return (req, res, next) => {
    core
      .handleManagementRequest(keygate, {
        request: toRequest(req),
        authentication: req.keygate,
        // As sent: `req.path` is decoded on Express 5, and has a leading `//` collapsed on 4.
        path: core.pathBelowMount(req.originalUrl, req.baseUrl),
        origin: `${req.protocol}://${req.get('host')}`,
        // A body parser mounted before us has read the stream already.
        body: () => req.body ?? req,
      })
      .then((response) => send(res, response), next);
  };
}
