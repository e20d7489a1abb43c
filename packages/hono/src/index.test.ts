import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { apiKeyAuth, createKeygate, requireScope } from './index.js';

async function appWithKey() {
  const keygate = createKeygate({ authFailureLimit: false });
  const { secret } = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
  const app = new Hono();
  app.use('*', apiKeyAuth({ keygate }));
  app.get('/json', requireScope('read:data'), (c) => c.json({ success: true }));
  app.get('/raw', requireScope('read:data'), () => new Response('raw body'));
  app.get('/denied', requireScope('write:llm'), (c) => c.json({ success: true }));
  return { app, secret, keygate };
}

describe('@keygate/hono rate-limit headers', () => {
  it.each(['/json', '/raw', '/denied'])('are on the response of %s, once', async (path) => {
    const { app, secret, keygate } = await appWithKey();
    const response = await app.request(path, { headers: { 'x-api-key': secret } });
    expect(response.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(response.headers.get('ratelimit-policy')).toMatch(/^"burst";q=10000;w=10, "daily"/);
    await keygate.close();
  });

  it('leave a handler-built Response intact', async () => {
    const { app, secret, keygate } = await appWithKey();
    const response = await app.request('/raw', { headers: { 'x-api-key': secret } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('raw body');
    await keygate.close();
  });
});
