// Express 4 or 5 from CommonJS JavaScript, as a user installs it: `npm install @keygate/express`.
const express = require('express');
const { apiKeyAuth, createKeygate, requireScope } = require('@keygate/express');
const { keyDashboard } = require('@keygate/dashboard/express');

async function main() {
  const keygate = createKeygate();
  const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

  const app = express();
  app.use(keyDashboard({ keygate }));
  app.use('/v1', apiKeyAuth({ keygate }));
  app.get('/v1/data', requireScope('read:data'), (req, res) => {
    res.json({ success: true, data: { keyId: req.apiKey.id, scopes: req.apiKey.scopes } });
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
