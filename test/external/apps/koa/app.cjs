// Koa 2 or 3 from CommonJS JavaScript, as a user installs it: `npm install @keygate/koa`.
const Koa = require('koa');
const { apiKeyAuth, createKeygate, requireScope } = require('@keygate/koa');
const { keyDashboard } = require('@keygate/dashboard/koa');

async function main() {
  const keygate = createKeygate();
  const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

  const app = new Koa();
  app.use(keyDashboard({ keygate }));
  app.use(apiKeyAuth({ keygate }));
  app.use(requireScope('read:data'));
  app.use((ctx) => {
    const { apiKey } = ctx.state;
    ctx.body = { success: true, data: { keyId: apiKey.id, scopes: apiKey.scopes } };
  });

  const server = app.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
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
