/**
 * Diagnostic, not a way to use keygate: what `@keygate/hono` does, by hand, except that the
 * rate-limit headers are set before the handler builds its response. The adapter sets them after
 * `await next()`; on a response that already exists Hono then rebuilds it, which makes
 * @hono/node-server give up its lightweight response for a full `Response` and body stream.
 */
import { serve } from '@hono/node-server';
import { type KeygateRequest, renderFailure, scopeRequirement } from '@keygate/core';
import { type Context, Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { openBenchKeygate } from './keygate-runtime.js';
import { announceReady, closeOnSignals, portFromEnv, ROUTE, websiteAnalytics } from './workload.js';

const runtime = await openBenchKeygate();
const { keygate } = runtime;
const readData = scopeRequirement('read:data');

function toRequest(c: Context): KeygateRequest {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return {
    method: c.req.method,
    url: c.req.url,
    headers: c.req.raw.headers,
    ip: env?.incoming?.socket?.remoteAddress,
  };
}

const app = new Hono();
app.get(ROUTE, async (c) => {
  const request = toRequest(c);
  const authenticated = await keygate.authenticate(request);
  if (!authenticated.ok) {
    const failure = renderFailure(authenticated.error, authenticated.headers);
    return c.json(failure.body, failure.status as ContentfulStatusCode, failure.headers);
  }
  for (const [name, value] of Object.entries(authenticated.headers)) c.header(name, value);
  const websiteId = c.req.param('websiteId');
  const authorized = keygate.authorize(
    authenticated.principal,
    readData,
    request,
    `website:${websiteId}`,
  );
  if (!authorized.ok) {
    const failure = renderFailure(authorized.error, authorized.headers);
    return c.json(failure.body, failure.status as ContentfulStatusCode, failure.headers);
  }
  return c.json(websiteAnalytics(websiteId));
});

const server = serve({ fetch: app.fetch, port: portFromEnv(), hostname: '127.0.0.1' }, (info) =>
  announceReady(info.port, `keygate core on hono, headers first (${runtime.description})`),
);
closeOnSignals(async () => {
  await new Promise((resolve) => server.close(resolve));
  await runtime.close();
});
