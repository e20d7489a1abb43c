import '@keygate/example-shared';
import type { Keygate } from '@keygate/core';
import { keyDashboard } from '@keygate/dashboard/hono';
import {
  APP_SCOPES,
  linkAnalytics,
  type TrustProxy,
  visibleWebsites,
  websiteAnalytics,
} from '@keygate/example-shared';
import { apiKeyAuth, apiKeyRoutes, clientIp, readiness, requireScope } from '@keygate/hono';
import { Hono } from 'hono';

/** The reference analytics API on Hono (SPEC §8). */
export function createApp(keygate: Keygate, config: { trustProxy?: TrustProxy } = {}): Hono {
  // Paths are case-sensitive in all three reference apps, and a trailing slash is tolerated.
  const app = new Hono({ strict: false });
  // Hono has no proxy setting: the client IP is the socket's, or per `TRUST_PROXY`'s proxies.
  const options = { keygate, getIp: clientIp({ trustProxy: config.trustProxy ?? 0 }) };
  // Readiness: 503 once the instance is shutting down.
  app.get('/health', (c) => {
    const answer = readiness(keygate);
    return c.json(answer.body, answer.status as 200, answer.headers);
  });
  app.get('/', (c) => c.redirect('/dashboard'));
  // The key-management page at /dashboard, signing in at /login and out at /logout.
  app.use(keyDashboard({ keygate, scopes: APP_SCOPES, getIp: options.getIp }));
  app.route('/v1/api-keys', apiKeyRoutes(options));
  app.use('/v1/*', apiKeyAuth(options));

  app.get('/v1/query/websites', requireScope('read:data', { keyType: 'secret' }), (c) =>
    c.json({ success: true, data: visibleWebsites(c.get('apiKey')) }),
  );
  app.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}', keyType: 'secret' }),
    (c) =>
      c.json({
        success: true,
        data: websiteAnalytics(c.req.param('websiteId'), c.get('apiKey').environment),
      }),
  );
  app.get(
    '/v1/links/:linkId/analytics',
    requireScope('read:data', { resource: 'link:{linkId}', keyType: 'secret' }),
    (c) =>
      c.json({
        success: true,
        data: linkAnalytics(c.req.param('linkId'), c.get('apiKey').environment),
      }),
  );
  app.post('/v1/events', requireScope('track:events'), (c) =>
    c.json(
      { success: true, data: { accepted: true, environment: c.get('apiKey').environment } },
      202,
    ),
  );
  app.post('/v1/llm/traces', requireScope('write:llm', { keyType: 'secret' }), (c) =>
    c.json({ success: true, data: { accepted: true } }, 201),
  );

  app.notFound((c) => c.json({ success: false, error: 'Not found', code: 'NOT_FOUND' }, 404));
  return app;
}
