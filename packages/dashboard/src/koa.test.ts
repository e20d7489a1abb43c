import { createKeygate, type Keygate } from '@keygate/core';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { keyDashboard } from './koa.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function setup(proxy = false) {
  const keygate = createKeygate({ authFailureLimit: false });
  open.push(keygate);
  const app = new Koa();
  app.proxy = proxy;
  app.use(keyDashboard({ keygate }));
  app.use((ctx) => {
    ctx.body = 'next';
  });
  return { keygate, app: app.callback() };
}

describe('@keygate/dashboard/koa', () => {
  it('serves the page, its sign-in and sign-out, and lets every other request go on', async () => {
    const { app } = setup();
    const page = await request(app).get('/dashboard/').expect(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.text).toContain('src="/dashboard/assets/main.');
    await request(app).get('/login').expect(200);
    expect((await request(app).get('/dashboardsmith')).text).toBe('next');
  });

  it('signs in and out; over HTTPS as app.proxy sees it, the cookie is __Host- and Secure', async () => {
    const { app, keygate } = setup(true);
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await request(app)
      .post('/login')
      .set('sec-fetch-site', 'same-origin')
      .set('x-forwarded-proto', 'https')
      .type('form')
      .send({ key: admin.secret })
      .expect(303);
    const cookie = signedIn.headers['set-cookie']![0]!;
    expect(cookie).toMatch(/^__Host-keygate_session=\w{64};.*Secure; SameSite=Strict$/);
    const out = await request(app)
      .post('/logout')
      .set('sec-fetch-site', 'same-origin')
      .set('x-forwarded-proto', 'https')
      .set('cookie', cookie.split(';')[0]!)
      .expect(303);
    expect(out.headers.location).toBe('/login');
    expect(out.headers['set-cookie']?.[0]).toBe(
      '__Host-keygate_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
    );
  });
});
