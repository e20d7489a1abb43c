import { nodeHeaders } from '@keygate/core';
import type { Context, Middleware } from 'koa';
import { createKeyPage, type KeyDashboardOptions } from './index.js';

export type { KeyDashboardOptions } from './index.js';

/**
 * The key-management page, its assets, sign-in and sign-out as one middleware:
 * `app.use(keyDashboard({ keygate }))` serves `/dashboard`, `/login` and `/logout` (see the
 * options); every other request goes on. The client IP is `ctx.ip` and the scheme
 * `ctx.protocol`, so Koa's `app.proxy` setting decides both.
 */
export function keyDashboard(options: KeyDashboardOptions): Middleware {
  const page = createKeyPage(options);
  return async (ctx, next) => {
    if (!page.owns(ctx.path)) return next();
    const answer = await page.handle({
      request: {
        method: ctx.method,
        url: ctx.originalUrl,
        headers: nodeHeaders(ctx.req.rawHeaders),
        ip: ctx.ip,
      },
      path: ctx.path,
      // Under `koa-mount`, links start at its prefix.
      base: (ctx as Context & { mountPath?: string }).mountPath ?? '',
      origin: `${ctx.protocol}://${ctx.host}`,
      // Unread, the stream; read by a body parser mounted before, what it made of it.
      body: () => (ctx.req.readable ? ctx.req : (ctx.request as { body?: unknown }).body),
    });
    ctx.status = answer.status;
    ctx.set(answer.headers);
    ctx.body = answer.body;
  };
}
