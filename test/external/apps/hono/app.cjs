// Hono 4 on Node from CommonJS JavaScript, as a user installs it: `npm install @keygate/hono`.
const { serve } = require('@hono/node-server');
const { Hono } = require('hono');
const { apiKeyAuth, createKeygate, requireScope } = require('@keygate/hono');
const { keyDashboard } = require('@keygate/dashboard/hono');

async function main() {
  const keygate = createKeygate();
  const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

  const app = new Hono();
  app.use(keyDashboard({ keygate }));
  app.use('/v1/*', apiKeyAuth({ keygate }));
  app.get('/v1/data', requireScope('read:data'), (c) => {
    const apiKey = c.get('apiKey');
    return c.json({ success: true, data: { keyId: apiKey.id, scopes: apiKey.scopes } });
  });

  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, ({ port }) => {
    console.log(
      JSON.stringify({ port, keyId: reader.key.id, secret: reader.secret, other: writer.secret }),
    );
  });
  // The test closes stdin when it is done: stop serving and flush keygate.
  process.stdin.on('end', () => {
    server.close();
    keygate.close();
  });
  process.stdin.resume();
}

main();
