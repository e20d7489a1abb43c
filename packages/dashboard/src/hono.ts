import { clientIp } from '@keygate/hono';
import type { Context, MiddlewareHandler } from 'hono';
import { basePath } from 'hono/route';
import type { ContentfulStatusCode as Status } from 'hono/utils/http-status';
import { createKeyPage, type KeyDashboardOptions } from './index.js';

export type { KeyDashboardOptions } from './index.js';

export type HonoDashboardOptions = KeyDashboardOptions & {
  /** The client IP, as `apiKeyAuth` finds it. Default `clientIp()` of `@keygate/hono`. */
  getIp?: (c: Context) => string | undefined;
  /**
   * The request's origin (scheme and host), which decides a `__Host-` + `Secure` cookie. Hono has
   * no proxy setting: behind a TLS-terminating proxy, name your public origin here. Default: the
   * request URL's.
   */
  getOrigin?: (c: Context) => string;
};

const urlOrigin = (c: Context) => new URL(c.req.url).origin;

/**
 * The key-management page, its assets, sign-in and sign-out as one middleware:
 * `app.use(keyDashboard({ keygate }))` serves `/dashboard`, `/login` and `/logout` (see the
 * options); every other request goes on.
 */
export function keyDashboard({
  getIp = clientIp(),
  getOrigin = urlOrigin,
  ...options
}: HonoDashboardOptions) {
  const page = createKeyPage(options);
  return (async (c, next) => {
    const base = basePath(c).replace(/\/+$/, '');
    const path = c.req.path.slice(base.length) || '/';
    if (!page.owns(path)) return next();
    const { method, url } = c.req;
    const answer = await page.handle({
      request: { method, url, headers: c.req.raw.headers, ip: getIp(c) },
      path,
      base,
      origin: getOrigin(c),
      // A middleware before may have read the body: Hono keeps it.
      body: () => (c.req.raw.bodyUsed ? c.req.text() : c.req.raw.body),
    });
    return c.body(answer.body, answer.status as Status, answer.headers);
  }) satisfies MiddlewareHandler;
}
