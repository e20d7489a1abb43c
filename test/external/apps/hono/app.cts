// Hono 4 on Node from TypeScript compiled to CommonJS, type-checked against the `.d.cts` declarations.
import { serve } from '@hono/node-server';
import { keyDashboard } from '@keygate/dashboard/hono';
import { apiKeyAuth, createKeygate, type Principal, requireScope } from '@keygate/hono';
import { Hono } from 'hono';

/** `true` only for `any`: a context value typed `any` would fail the assignment below. */
type IsAny<T> = 0 extends 1 & T ? true : false;

async function main(): Promise<void> {
  const keygate = createKeygate();
  const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

  const app = new Hono();
  app.use(keyDashboard({ keygate }));
  app.use('/v1/*', apiKeyAuth({ keygate }));
  app.get('/v1/data', requireScope('read:data'), (c) => {
    const apiKey = c.get('apiKey');
    const principal: Principal = apiKey;
    const typed: IsAny<typeof apiKey> = false;
    return c.json({
      success: typed === false,
      data: { keyId: principal.id, scopes: principal.scopes },
    });
  });

  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, ({ port }) => {
    console.log(
      JSON.stringify({ port, keyId: reader.key.id, secret: reader.secret, other: writer.secret }),
    );
  });
  // The test closes stdin when it is done: stop serving and flush keygate.
  process.stdin.on('end', () => {
    server.close();
    void keygate.close();
  });
  process.stdin.resume();
}

void main();
