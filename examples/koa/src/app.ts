import '@keygate/example-shared';
import type { Keygate } from '@keygate/core';
import { keyDashboard } from '@keygate/dashboard/koa';
import {
  APP_SCOPES,
  linkAnalytics,
  type TrustProxy,
  visibleWebsites,
  websiteAnalytics,
} from '@keygate/example-shared';
import { type ApiKeyState, apiKeyAuth, apiKeyRoutes, readiness, requireScope } from '@keygate/koa';
import Router from '@koa/router';
import Koa from 'koa';
import proxyaddr from 'proxy-addr';

/** The reference analytics API on Koa (SPEC §8). */
export function createApp(
  keygate: Keygate,
  config: { trustProxy?: TrustProxy } = {},
): Koa<ApiKeyState> {
  const app = new Koa<ApiKeyState>();
  const options = { keygate };
  const trustProxy = config.trustProxy ?? 0;
  if (typeof trustProxy === 'number') {
    // Koa trusts the last `maxIpsCount` X-Forwarded-For entries: the client is the rightmost untrusted one.
    app.proxy = trustProxy > 0;
    app.maxIpsCount = trustProxy;
  } else {
    // Koa cannot trust proxies by address: the client IP is found as Express finds it.
    const trusted = proxyaddr.compile(trustProxy);
    app.use((ctx, next) => {
      ctx.request.ip = proxyaddr(ctx.req, trusted);
      return next();
    });
  }
  // Paths are case-sensitive in all three reference apps, and a trailing slash is tolerated.
  const router = new Router<ApiKeyState>({ sensitive: true });
  // Readiness: 503 once the instance is shutting down.
  router.get('/health', (ctx) => {
    const answer = readiness(keygate);
    ctx.status = answer.status;
    ctx.set(answer.headers);
    ctx.body = answer.body;
  });
  router.get('/', (ctx) => ctx.redirect('/dashboard'));
  router.get('/v1/query/websites', requireScope('read:data', { keyType: 'secret' }), (ctx) => {
    ctx.body = { success: true, data: visibleWebsites(ctx.state.apiKey) };
  });
  router.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}', keyType: 'secret' }),
    (ctx) => {
      const { environment } = ctx.state.apiKey;
      ctx.body = { success: true, data: websiteAnalytics(ctx.params.websiteId!, environment) };
    },
  );
  router.get(
    '/v1/links/:linkId/analytics',
    requireScope('read:data', { resource: 'link:{linkId}', keyType: 'secret' }),
    (ctx) => {
      const { environment } = ctx.state.apiKey;
      ctx.body = { success: true, data: linkAnalytics(ctx.params.linkId!, environment) };
    },
  );
  router.post('/v1/events', requireScope('track:events'), (ctx) => {
    ctx.status = 202;
    ctx.body = {
      success: true,
      data: { accepted: true, environment: ctx.state.apiKey.environment },
    };
  });
  router.post('/v1/llm/traces', requireScope('write:llm', { keyType: 'secret' }), (ctx) => {
    ctx.status = 201;
    ctx.body = { success: true, data: { accepted: true } };
  });

  const authenticate = apiKeyAuth(options);
  // The key-management page at /dashboard, signing in at /login and out at /logout.
  app.use(keyDashboard({ keygate, scopes: APP_SCOPES }));
  app.use(apiKeyRoutes(options));
  app.use(async (ctx, next) => (ctx.path.startsWith('/v1/') ? authenticate(ctx, next) : next()));
  app.use(router.routes());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { success: false, error: 'Not found', code: 'NOT_FOUND' };
  });
  return app;
}
