/**
 * SPEC §10 in a real browser: Debian's Chromium driven by playwright-core, against each reference
 * app (Hono, Express, Koa) as a separate process over a fresh Postgres database. A person signs in
 * (a page session), creates a key, reads its secret off the page, uses it, rotates and revokes it,
 * and sees it all in the key's audit events and usage chart. A session's key revoked, rotated or
 * narrowed by another client refuses the page's next action; signing out ends the session; a
 * cross-origin attack and delegation bounds too; and, without page sessions, a pasted key.
 *
 * Screenshots for the docs are written to docs/ when KEYGATE_SCREENSHOTS=1 (with a dummy secret).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAdaptorServer } from '@hono/node-server';
import { createKeygate, type Keygate } from '@keygate/core';
import { keyDashboard } from '@keygate/dashboard/hono';
import { apiKeyRoutes } from '@keygate/hono';
import { Hono } from 'hono';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { type AppProcess, startAppProcess, stopAppProcesses } from '../support/processes.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// No network but loopback here: Chromium must not try to reach its own services.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs');
const SCREENSHOTS = process.env.KEYGATE_SCREENSHOTS === '1';
const DUMMY_SECRET = 'sk_live_DUMMYxSECRETxFORxTHExDOCSxSCREENSHOTS00';
const FRAMEWORKS = ['hono', 'express', 'koa'] as const;
// Page code as text: this file is compiled without the DOM's types.
const STORAGE = 'JSON.stringify({ ...localStorage, ...sessionStorage })';

type Framework = (typeof FRAMEWORKS)[number];

interface Target {
  database: TestDatabase;
  keygate: Keygate;
  app: AppProcess;
  /** A live admin key with `manage:keys`, `read:data`, `write:llm` and `track:events`. */
  admin: string;
  /** A live admin key without `write:llm`. */
  limitedAdmin: string;
}

let browser: Browser;
const targets = new Map<Framework, Target>();

async function prepare(framework: Framework): Promise<Target> {
  const database = await createTestDatabase();
  const keygate = createKeygate({
    store: database.store,
    auditSinks: [database.auditSink],
    cache: false,
    limiter: false,
  });
  const create = async (input: Parameters<Keygate['keys']['create']>[0]) =>
    (await keygate.keys.create(input)).secret;
  const admin = await create({
    name: 'Admin (ops)',
    scopes: ['manage:keys', 'read:data', 'write:llm', 'track:events'],
  });
  const limitedAdmin = await create({ name: 'Team admin', scopes: ['manage:keys', 'read:data'] });
  // A realistic list around the keys the tests create.
  await create({ name: 'Browser SDK', type: 'public', scopes: ['track:events'] });
  await create({
    name: 'CI (staging)',
    environment: 'test',
    scopes: ['read:data'],
    expiresAt: new Date(Date.now() + 3 * 86_400_000),
  });
  const old = await keygate.keys.create({ name: 'Old importer', scopes: ['write:llm'] });
  await keygate.keys.revoke(old.key.id);
  const app = await startAppProcess(framework, { DATABASE_URL: database.url, REDIS_URL: '' });
  return { database, keygate, app, admin, limitedAdmin };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `The browser tests need Chromium at ${CHROMIUM}. Install it with:\n  apt-get install -y chromium`,
    );
  }
  const [launched, ...prepared] = await Promise.all([
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS }),
    ...FRAMEWORKS.map(prepare),
  ]);
  browser = launched;
  for (const [index, framework] of FRAMEWORKS.entries()) targets.set(framework, prepared[index]!);
  if (SCREENSHOTS) await mkdir(DOCS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stopAppProcesses();
  for (const target of targets.values()) {
    await target.keygate.close();
    await target.database.close();
  }
});

async function openPage(viewport = { width: 1280, height: 860 }): Promise<{
  context: BrowserContext;
  page: Page;
  errors: string[];
}> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // A CSP violation is reported on the console: the page must cause none.
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
      errors.push(message.text());
    }
  });
  // The page asks who is signed in only when the server saw a session: never a 401 on loading.
  page.on('response', (response) => {
    if (response.url().endsWith('/v1/api-keys/me') && response.status() === 401) {
      errors.push(`${response.status()} from ${response.url()}`);
    }
  });
  return { context, page, errors };
}

/** Signs in as a person does: the sign-in form, which opens a page session. */
async function signIn(page: Page, origin: string, key: string): Promise<void> {
  await page.goto(`${origin}/dashboard`);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
}

/** The management API as another client (a script with an admin key) uses it. */
async function manage(
  origin: string,
  secret: string,
  method: string,
  path: string,
  body?: unknown,
) {
  const response = await fetch(`${origin}/v1/api-keys${path}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(response.status, `${method} ${path}`).toBe(200);
  return response.json() as Promise<{ data: Record<string, unknown> }>;
}

/** A new admin key, made by another client through the management API. */
async function createdBy(
  origin: string,
  admin: string,
  name: string,
): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${origin}/v1/api-keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, scopes: ['manage:keys', 'read:data'] }),
  });
  expect(response.status).toBe(201);
  const { data } = (await response.json()) as { data: { id: string; secret: string } };
  return data;
}

async function call(
  origin: string,
  route: string,
  secret: string,
): Promise<{ status: number; code: string | undefined }> {
  const response = await fetch(`${origin}${route}`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  const body = (await response.json()) as { code?: string };
  return { status: response.status, code: body.code };
}

async function shoot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS) await page.screenshot({ path: path.join(DOCS, name), animations: 'disabled' });
}

function setValue(input: unknown, value: string): void {
  (input as { value: string }).value = value;
}

/** The secret shown in the open dialog; for a screenshot, swapped for a dummy first. */
async function readSecret(page: Page, screenshot?: string): Promise<string> {
  const field = page.getByTestId('secret');
  const secret = await field.inputValue();
  if (screenshot && SCREENSHOTS) {
    await field.evaluate(setValue, DUMMY_SECRET);
    expect(await field.inputValue()).toBe(DUMMY_SECRET);
    await field.blur();
    await shoot(page, screenshot);
    await field.evaluate(setValue, secret);
  }
  return secret;
}

async function dismissSecret(page: Page, secret: string): Promise<void> {
  await page.getByLabel('I have stored this secret somewhere safe').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('secret').waitFor({ state: 'detached' });
  // Gone from the page, and never in a URL or in storage that outlives the tab.
  expect(await page.content()).not.toContain(secret);
  expect(page.url()).not.toContain(secret);
  expect(await page.evaluate<string>(STORAGE)).not.toContain(secret);
}

describe.each(FRAMEWORKS)('the key-management page on %s', (framework) => {
  it('signs in with an admin key, creates, uses, rotates and revokes a key, and shows it all', async () => {
    const { app, admin } = targets.get(framework)!;
    const { context, page, errors } = await openPage();
    try {
      await page.goto(`${app.origin}/`);
      expect(new URL(page.url()).pathname).toBe('/dashboard');
      if (framework === 'hono') await shoot(page, 'dashboard-sign-in.png');
      await page.getByLabel('Admin key').fill(admin);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByTestId('whoami').getByText('Admin (ops)').waitFor();
      // The key went to the server once: the browser keeps an HttpOnly cookie and nothing else.
      expect(await page.evaluate<string>(STORAGE)).toBe('{}');
      expect(await page.evaluate<string>('document.cookie')).toBe('');
      const [cookie] = await context.cookies();
      expect(cookie).toMatchObject({ name: 'keygate_session', httpOnly: true, sameSite: 'Strict' });
      await page.getByRole('row', { name: /Browser SDK/ }).waitFor();
      if (framework === 'hono') await shoot(page, 'dashboard-keys.png');

      // Create: a resource, an expiry and a small limit (so the chart also has rate-limited bars).
      await page.getByRole('button', { name: 'Create key' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create an API key' });
      await dialog.getByLabel('Name').fill('Reporting (prod)');
      await dialog.getByRole('checkbox', { name: 'read:data' }).check();
      await dialog.getByLabel('Only these resources').check();
      await dialog.getByRole('textbox', { name: 'Resources' }).fill('website:w_1');
      await dialog.getByLabel('Expires').selectOption('30');
      await dialog.getByText('Rate limit').click();
      await dialog.getByLabel('Per second').fill('0.01');
      await dialog.getByLabel('Burst').fill('5');
      await dialog.getByRole('button', { name: 'Create key' }).click();
      const secret = await readSecret(
        page,
        framework === 'hono' ? 'dashboard-secret.png' : undefined,
      );
      expect(secret).toMatch(/^sk_live_[A-Za-z0-9]{38}$/);
      await dismissSecret(page, secret);

      // Five tokens, refilled once in 100 s: this 200 and 403 take two, three more are left.
      expect(await call(app.origin, '/v1/websites/w_1/analytics', secret)).toMatchObject({
        status: 200,
      });
      expect(await call(app.origin, '/v1/websites/w_2/analytics', secret)).toMatchObject({
        status: 403,
        code: 'ACCESS_DENIED',
      });

      // The key's page: expiry and resource as created.
      await page.getByRole('link', { name: 'Reporting (prod)' }).click();
      await page.getByRole('heading', { name: /Reporting \(prod\)/, level: 1 }).waitFor();
      const details = page.getByRole('region', { name: 'Details' });
      await details.getByText('website:w_1').waitFor();
      const expires = await details.evaluate(
        (section) =>
          [...section.querySelectorAll('dt')].find((dt) => dt.textContent === 'Expires')
            ?.nextElementSibling?.textContent,
      );
      expect(expires).toMatch(/\d{4}/);

      // Rotate at once: the old secret stops working, the new one works.
      await page.getByRole('button', { name: 'Rotate' }).click();
      await page
        .getByRole('dialog', { name: /Rotate/ })
        .getByRole('button', { name: 'Rotate key' })
        .click();
      const rotated = await readSecret(page);
      expect(rotated).not.toBe(secret);
      await dismissSecret(page, rotated);
      expect(await call(app.origin, '/v1/websites/w_1/analytics', secret)).toMatchObject({
        status: 401,
        code: 'INVALID_API_KEY',
      });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push((await call(app.origin, '/v1/websites/w_1/analytics', rotated)).status);
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);

      // Revoke, with the name typed to confirm.
      await page.getByRole('button', { name: 'Revoke' }).click();
      const revoke = page.getByRole('dialog', { name: /Revoke/ });
      const confirm = revoke.getByRole('button', { name: 'Revoke key' });
      expect(await confirm.isDisabled()).toBe(true);
      await revoke.getByLabel(/to confirm/).fill('Reporting (prod)');
      await confirm.click();
      await page.getByRole('heading', { name: /Revoked/, level: 1 }).waitFor();
      expect(await call(app.origin, '/v1/websites/w_1/analytics', rotated)).toMatchObject({
        status: 401,
        code: 'INVALID_API_KEY',
      });

      // The audit trail and the usage chart show what happened. Usage is counted per minute and
      // written once the minute is over or when the app stops: restart it rather than wait.
      const keyPath = new URL(page.url()).pathname;
      expect(keyPath).toMatch(/^\/dashboard\/keys\/key_\w+$/);
      await app.stop();
      const restarted = await startAppProcess(framework, {
        DATABASE_URL: targets.get(framework)!.database.url,
        REDIS_URL: '',
      });
      targets.get(framework)!.app = restarted;
      // The session lives in Postgres: it outlives the restart.
      await page.goto(`${restarted.origin}${keyPath}`);
      await page.getByTestId('whoami').getByText('Admin (ops)').waitFor();
      const events = page.getByTestId('events');
      await expect
        .poll(
          async () => {
            await page.reload();
            await events.waitFor();
            return events
              .locator('tbody tr')
              .evaluateAll((rows) =>
                [...new Set(rows.map((row) => row.getAttribute('data-action')))].sort(),
              );
          },
          { timeout: 20_000, interval: 500 },
        )
        .toEqual(
          expect.arrayContaining(['auth.failed', 'key.created', 'key.revoked', 'key.rotated']),
        );
      expect(
        await events.locator('tr[data-action="key.created"]').count(),
        'newest first: creation is the last row',
      ).toBe(1);
      expect(await events.locator('tbody tr').last().getAttribute('data-action')).toBe(
        'key.created',
      );
      // Who made each change, by the name and start of their key.
      expect(await events.locator('tr[data-action="key.revoked"]').textContent()).toMatch(
        /by Admin \(ops\)sk_live_\w+…/,
      );

      const totals = page.getByTestId('usage-totals');
      const outcome = async (name: string) =>
        Number(
          (await totals.locator(`dd[data-outcome="${name}"]`).textContent())?.replace(/\D/g, ''),
        );
      await expect
        .poll(
          async () => {
            await page.reload();
            await totals.waitFor({ timeout: 10_000 });
            return {
              served: await outcome('served'),
              failed: await outcome('failed'),
              rateLimited: await outcome('rateLimited'),
            };
          },
          { timeout: 30_000, interval: 1_000 },
        )
        .toSatisfy(
          (seen: Record<string, number>) =>
            seen.served! >= 4 && seen.failed! >= 2 && seen.rateLimited === 2,
        );
      // The chart is drawn after the totals are shown: wait for it as a user would.
      await expect.poll(() => page.locator('.chart canvas').count(), { timeout: 10_000 }).toBe(1);
      if (framework === 'hono') {
        await page.locator('.chart').scrollIntoViewIfNeeded();
        await shoot(page, 'dashboard-key.png');
      }
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);

  it('a session acts with its key as it is now: narrowed, rotated or revoked elsewhere, the next action is refused; signing out ends it', async () => {
    const { app, admin } = targets.get(framework)!;
    const { context, page, errors } = await openPage();
    try {
      // Narrowed by another client: the page's next action is refused for want of the scope.
      const narrowed = await createdBy(app.origin, admin, 'Narrowed admin');
      await signIn(page, app.origin, narrowed.secret);
      await page.getByRole('row', { name: /Browser SDK/ }).waitFor();
      await manage(app.origin, admin, 'PATCH', `/${narrowed.id}`, { scopes: ['read:data'] });
      await page.getByRole('link', { name: 'Browser SDK' }).click();
      await page.getByText('API key lacks the required scope: manage:keys').waitFor();

      // Rotated (with a grace period for its servers): the session is over.
      const rotated = await createdBy(app.origin, admin, 'Rotated admin');
      await signIn(page, app.origin, rotated.secret);
      await manage(app.origin, admin, 'POST', `/${rotated.id}/rotate`, {
        gracePeriodSeconds: 3600,
      });
      await page.getByRole('button', { name: 'Create key' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create an API key' });
      await dialog.getByLabel('Name').fill('After the rotation');
      await dialog.getByRole('checkbox', { name: 'read:data' }).check();
      await dialog.getByRole('button', { name: 'Create key' }).click();
      await page.getByText('You were signed out: the key or session is no longer valid.').waitFor();
      expect(await page.getByTestId('secret').count(), 'no key was issued').toBe(0);

      // Revoked: the same.
      const revoked = await createdBy(app.origin, admin, 'Revoked admin');
      await signIn(page, app.origin, revoked.secret);
      await manage(app.origin, admin, 'DELETE', `/${revoked.id}`);
      await page.getByRole('link', { name: 'Browser SDK' }).click();
      await page.getByText('You were signed out: the key or session is no longer valid.').waitFor();
      // A reload clears the dead cookie, and asks nothing of the server.
      await page.reload();
      await page.getByLabel('Admin key').waitFor();
      expect(await context.cookies()).toEqual([]);

      // Signing out ends the session on the server: the cookie, replayed, opens nothing.
      const leaving = await createdBy(app.origin, admin, 'Leaving admin');
      await signIn(page, app.origin, leaving.secret);
      const [cookie] = await context.cookies();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin key').waitFor();
      expect(new URL(page.url()).pathname).toBe('/login');
      expect(await context.cookies()).toEqual([]);
      const replayed = await fetch(`${app.origin}/v1/api-keys/me`, {
        headers: { cookie: `${cookie!.name}=${cookie!.value}` },
      });
      expect(replayed.status).toBe(401);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);

  it('refuses a state-changing request that another origin sends with the session cookie', async () => {
    const { app, admin, database } = targets.get(framework)!;
    const { context, page } = await openPage();
    // Another port on the same host: same site, so the SameSite=Strict cookie goes along.
    const attacker = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end(`<!doctype html><body><script>
        fetch(${JSON.stringify(`${app.origin}/v1/api-keys`)}, {
          method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: { 'Content-Type': 'text/plain' },
          body: JSON.stringify({ name: 'planted', scopes: ['manage:keys'] }),
        });
      </script></body>`);
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    try {
      await signIn(page, app.origin, admin);
      const refused = page.waitForResponse(
        (response) =>
          response.url().endsWith('/v1/api-keys') && response.request().method() === 'POST',
      );
      await page.goto(`http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`);
      const response = await refused;
      expect([403, 415]).toContain(response.status());
      const planted = await database.sql`select id from keygate_api_keys where name = 'planted'`;
      expect(planted).toEqual([]);
    } finally {
      attacker.close();
      await context.close();
    }
  }, 60_000);

  it('does not let an admin grant a scope it does not hold, even from a tampered page', async () => {
    const { app, limitedAdmin, database } = targets.get(framework)!;
    const { context, page } = await openPage();
    try {
      await signIn(page, app.origin, limitedAdmin);
      await page.getByRole('button', { name: 'Create key' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create an API key' });
      await dialog.getByLabel('Name').fill('Wider than me');
      const beyond = dialog.getByRole('checkbox', { name: /write:llm/ });
      expect(await beyond.isDisabled()).toBe(true);
      await dialog.getByText('not in your access').first().waitFor();
      // What an attacker with devtools would do: enable the box and send it anyway.
      await beyond.evaluate((input) => input.removeAttribute('disabled'));
      await beyond.check();
      await dialog.getByRole('button', { name: 'Create key' }).click();
      const refusal = dialog.locator('.field-error, [role="alert"]').first();
      await refusal.or(page.getByTestId('secret')).waitFor();
      expect(await page.getByTestId('secret').count(), 'no key was issued').toBe(0);
      expect(await refusal.textContent()).toMatch(/write:llm|scope/i);
      const created =
        await database.sql`select id from keygate_api_keys where name = 'Wider than me'`;
      expect(created).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});

describe('the page itself', () => {
  it('asks who is signed in only when the request came with a session: no failed request on load', async () => {
    const { app } = targets.get('express')!;
    const { context, page, errors } = await openPage();
    const asked: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/v1/api-keys')) asked.push(request.url());
    });
    try {
      await page.goto(`${app.origin}/dashboard`);
      await page.getByLabel('Admin key').waitFor();
      await page.goto(`${app.origin}/login`);
      await page.getByLabel('Admin key').waitFor();
      expect(asked).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('without page sessions, a pasted key stays in the tab only, and signing out forgets it', async () => {
    const { database, admin } = targets.get('hono')!;
    const keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      pageSessions: false,
    });
    const hono = new Hono();
    hono.use(keyDashboard({ keygate }));
    hono.route('/v1/api-keys', apiKeyRoutes({ keygate }));
    const server = createAdaptorServer({ fetch: hono.fetch }) as http.Server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { context, page, errors } = await openPage();
    try {
      expect((await fetch(`${origin}/login`)).status).toBe(404);
      await page.goto(`${origin}/dashboard`);
      await page.getByLabel('Admin key').fill(admin);
      await page.getByRole('button', { name: 'Sign in with key' }).click();
      await page.getByTestId('whoami').getByText('sk_live_').waitFor();
      expect(await page.evaluate<string>(STORAGE)).toMatch(
        /^\{"keygate\.dashboard\.key":"sk_live_/,
      );
      expect(await context.cookies()).toEqual([]);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin key').waitFor();
      expect(await page.evaluate<string>(STORAGE)).toBe('{}');
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      server.close();
      await keygate.close();
    }
  }, 60_000);

  it('is served with a strict CSP, long-cached hashed assets, and works at phone width', async () => {
    const { app, admin } = targets.get('hono')!;
    const html = await fetch(`${app.origin}/dashboard`);
    expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(html.headers.get('cache-control')).toBe('no-store');
    const script = /src="([^"]+\.js)"/.exec(await html.text())?.[1];
    const asset = await fetch(`${app.origin}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');

    const { context, page, errors } = await openPage({ width: 390, height: 844 });
    try {
      await signIn(page, app.origin, admin);
      await page.getByRole('row', { name: /Browser SDK/ }).waitFor();
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      );
      expect(overflow, 'no horizontal scrolling at 390 px').toBeLessThanOrEqual(0);
      await page.getByRole('button', { name: 'Create key' }).click();
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'detached' });
      await expect
        .poll(() => page.evaluate<string>('document.activeElement.textContent'), { timeout: 5_000 })
        .toBe('Create key');
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
