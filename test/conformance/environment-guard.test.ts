/**
 * `requireScope(scope, { environments })` on each adapter: a route bound to live data refuses
 * test keys (and the reverse) before its handler runs.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { createKeygate, type Keygate } from '@keygate/core';
import * as expressAdapter from '@keygate/express';
import * as honoAdapter from '@keygate/hono';
import * as koaAdapter from '@keygate/koa';
import Router from '@koa/router';
import express from 'express';
import { Hono } from 'hono';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** A server with `GET /live` (live keys only) and `GET /sandbox` (test keys only); `runs` counts handler runs. */
type Build = (keygate: Keygate, runs: { count: number }) => http.Server;

const builds: Record<'hono' | 'express' | 'koa', Build> = {
  hono: (keygate, runs) => {
    const { apiKeyAuth, requireScope } = honoAdapter;
    const app = new Hono();
    app.use('*', apiKeyAuth({ keygate }));
    app.get('/live', requireScope('read:data', { environments: ['live'] }), (c) => {
      runs.count++;
      return c.json({ success: true });
    });
    app.get('/sandbox', requireScope('read:data', { environments: ['test'] }), (c) => {
      runs.count++;
      return c.json({ success: true });
    });
    return createAdaptorServer({ fetch: app.fetch }) as http.Server;
  },
  express: (keygate, runs) => {
    const { apiKeyAuth, requireScope } = expressAdapter;
    const app = express();
    app.use(apiKeyAuth({ keygate }));
    app.get('/live', requireScope('read:data', { environments: ['live'] }), (_req, res) => {
      runs.count++;
      res.json({ success: true });
    });
    app.get('/sandbox', requireScope('read:data', { environments: ['test'] }), (_req, res) => {
      runs.count++;
      res.json({ success: true });
    });
    return http.createServer(app);
  },
  koa: (keygate, runs) => {
    const { apiKeyAuth, requireScope } = koaAdapter;
    const app = new Koa();
    const router = new Router();
    router.get('/live', requireScope('read:data', { environments: ['live'] }), (ctx) => {
      runs.count++;
      ctx.body = { success: true };
    });
    router.get('/sandbox', requireScope('read:data', { environments: ['test'] }), (ctx) => {
      runs.count++;
      ctx.body = { success: true };
    });
    app.use(apiKeyAuth({ keygate }));
    app.use(router.routes());
    return http.createServer(app.callback());
  },
};

describe.each(Object.entries(builds))('%s: routes bound to an environment', (_name, build) => {
  const runs = { count: 0 };
  let keygate: Keygate;
  let server: http.Server;
  let origin: string;
  let live: string;
  let test: string;

  beforeAll(async () => {
    keygate = createKeygate({ authFailureLimit: false });
    live = (await keygate.keys.create({ name: 'live', scopes: ['read:data'] })).secret;
    test = (await keygate.keys.create({ name: 'test', environment: 'test', scopes: ['read:data'] }))
      .secret;
    server = build(keygate, runs);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await keygate?.close();
  });

  async function get(path: string, secret: string) {
    const before = runs.count;
    const response = await fetch(`${origin}${path}`, { headers: { 'x-api-key': secret } });
    return { status: response.status, body: await response.json(), ran: runs.count > before };
  }

  it('a test key cannot read a live-only route; the handler does not run', async () => {
    expect(await get('/live', test)).toEqual({
      status: 403,
      body: { success: false, error: 'This endpoint requires a live API key', code: 'FORBIDDEN' },
      ran: false,
    });
    expect(await get('/live', live)).toEqual({ status: 200, body: { success: true }, ran: true });
  });

  it('a live key cannot reach a test-only route', async () => {
    expect(await get('/sandbox', live)).toEqual({
      status: 403,
      body: { success: false, error: 'This endpoint requires a test API key', code: 'FORBIDDEN' },
      ran: false,
    });
    expect(await get('/sandbox', test)).toEqual({
      status: 200,
      body: { success: true },
      ran: true,
    });
  });
});
