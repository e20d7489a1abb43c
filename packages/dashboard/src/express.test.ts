import { createKeygate, type Keygate } from '@keygate/core';
import express from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { keyDashboard } from './express.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function setup(configure?: (app: express.Express) => void) {
  const keygate = createKeygate({ authFailureLimit: false });
  open.push(keygate);
  const app = express();
  configure?.(app);
  app.use(keyDashboard({ keygate }));
  app.get('/v1/ping', (_req, res) => {
    res.send('pong');
  });
  return { keygate, app };
}

const signIn = (app: express.Express, key: string) =>
  request(app).post('/login').set('sec-fetch-site', 'same-origin').type('form').send({ key });

describe('@keygate/dashboard/express', () => {
  it('serves the page, its sign-in and sign-out, and lets every other request go on', async () => {
    const { app } = setup();
    const page = await request(app).get('/dashboard/keys/key_1').expect(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('src="/dashboard/assets/main.');
    await request(app).get('/login').expect(200);
    await request(app).get('/logout').expect(405);
    expect((await request(app).get('/v1/ping')).text).toBe('pong');
    await request(app).get('/dashboardx').expect(404);
  });

  it('links from where it is mounted', async () => {
    const keygate = createKeygate();
    open.push(keygate);
    const app = express();
    app.use('/admin', keyDashboard({ keygate }));
    const page = await request(app).get('/admin/dashboard').expect(200);
    expect(page.text).toContain('src="/admin/dashboard/assets/main.');
    expect(page.text).toContain('"signOutPath":"/admin/logout"');
  });

  it('sets a __Host- Secure cookie when trust proxy says the request was HTTPS, a plain one otherwise', async () => {
    const trusted = setup((app) => app.set('trust proxy', 1));
    const admin = await trusted.keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const secure = await signIn(trusted.app, admin.secret).set('x-forwarded-proto', 'https');
    expect(secure.status).toBe(303);
    expect(secure.headers['set-cookie']?.[0]).toMatch(/^__Host-keygate_session=\w{64};.*Secure/);

    const untrusted = setup();
    const other = await untrusted.keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const plain = await signIn(untrusted.app, other.secret).set('x-forwarded-proto', 'https');
    expect(plain.headers['set-cookie']?.[0]).toMatch(/^keygate_session=\w{64}; Path=\/;/);
  });

  it('takes a form express.urlencoded() already read, and checks the key against req.ip', async () => {
    const { app, keygate } = setup((app) => app.use(express.urlencoded({ extended: false })));
    const local = await keygate.keys.create({
      name: 'local',
      scopes: ['manage:keys'],
      restrictions: { ips: ['127.0.0.1/32', '::1/128'] },
    });
    const far = await keygate.keys.create({
      name: 'far',
      scopes: ['manage:keys'],
      restrictions: { ips: ['203.0.113.0/24'] },
    });
    expect((await signIn(app, local.secret)).status).toBe(303);
    expect((await signIn(app, far.secret)).status).toBe(403);
  });
});
