import '@keygate/example-shared';
import type { Keygate } from '@keygate/core';
import { keyDashboard } from '@keygate/dashboard/express';
import {
  APP_SCOPES,
  linkAnalytics,
  type TrustProxy,
  visibleWebsites,
  websiteAnalytics,
} from '@keygate/example-shared';
import { apiKeyAuth, apiKeyRoutes, readiness, requireScope } from '@keygate/express';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';

/** The reference analytics API on Express (SPEC §8). */
export function createApp(keygate: Keygate, config: { trustProxy?: TrustProxy } = {}): Express {
  const app = express();
  const options = { keygate };
  app.disable('x-powered-by');
  // Paths are case-sensitive in all three reference apps, and a trailing slash is tolerated.
  app.enable('case sensitive routing');
  // A number of hops or the proxies' addresses: the client is the rightmost untrusted address.
  app.set('trust proxy', config.trustProxy ?? 0);
  // Readiness: 503 once the instance is shutting down.
  app.get('/health', (_req, res) => {
    const answer = readiness(keygate);
    res.status(answer.status).set(answer.headers).json(answer.body);
  });
  app.get('/', (_req, res) => res.redirect('/dashboard'));
  // The key-management page at /dashboard, signing in at /login and out at /logout.
  app.use(keyDashboard({ keygate, scopes: APP_SCOPES }));
  app.use('/v1/api-keys', apiKeyRoutes(options));
  app.use('/v1', apiKeyAuth(options));

  app.get('/v1/query/websites', requireScope('read:data', { keyType: 'secret' }), (req, res) => {
    res.json({ success: true, data: visibleWebsites(req.apiKey!) });
  });
  app.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}', keyType: 'secret' }),
    (req, res) => {
      const { environment } = req.apiKey!;
      res.json({
        success: true,
        data: websiteAnalytics(req.params.websiteId as string, environment),
      });
    },
  );
  app.get(
    '/v1/links/:linkId/analytics',
    requireScope('read:data', { resource: 'link:{linkId}', keyType: 'secret' }),
    (req, res) => {
      const { environment } = req.apiKey!;
      res.json({ success: true, data: linkAnalytics(req.params.linkId as string, environment) });
    },
  );
  app.post('/v1/events', requireScope('track:events'), (req, res) => {
    res
      .status(202)
      .json({ success: true, data: { accepted: true, environment: req.apiKey!.environment } });
  });
  app.post('/v1/llm/traces', requireScope('write:llm', { keyType: 'secret' }), (_req, res) => {
    res.status(201).json({ success: true, data: { accepted: true } });
  });

  app.use((_req, res) => {
    res.status(404).json({ success: false, error: 'Not found', code: 'NOT_FOUND' });
  });
  // Express refuses a malformed `%` escape in a path parameter with a 400 HTML page; answer in JSON.
  app.use((error: { status?: unknown }, _req: Request, res: Response, next: NextFunction) => {
    if (error.status !== 400 || res.headersSent) return next(error);
    res.status(400).json({ success: false, error: 'Invalid request', code: 'INVALID_REQUEST' });
  });
  return app;
}
