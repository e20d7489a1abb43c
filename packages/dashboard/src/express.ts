import { nodeHeaders } from '@keygate/core';
import type { RequestHandler } from 'express';
import { createKeyPage, type KeyDashboardOptions } from './index.js';

export type { KeyDashboardOptions } from './index.js';

/**
 * The key-management page, its assets, sign-in and sign-out as one middleware:
 * `app.use(keyDashboard({ keygate }))` serves `/dashboard`, `/login` and `/logout` (see the
 * options) below where it is mounted; every other request goes on. The client IP is `req.ip`
 * and the scheme `req.protocol`, so Express's `trust proxy` setting decides both.
 */
export function keyDashboard(options: KeyDashboardOptions): RequestHandler {
  const page = createKeyPage(options);
  return (req, res, next) => {
    if (!page.owns(req.path)) return next();
    page
      .handle({
        request: {
          method: req.method,
          url: req.originalUrl,
          headers: nodeHeaders(req.rawHeaders),
          ip: req.ip,
        },
        path: req.path,
        base: req.baseUrl,
        origin: `${req.protocol}://${req.get('host')}`,
        // Unread, the stream; read by a body parser mounted before, what it made of it.
        body: () => (req.readable ? req : req.body),
      })
      .then((answer) => {
        res.status(answer.status).set(answer.headers).send(answer.body);
      }, next);
  };
}
