// Express 4 or 5 from TypeScript compiled to CommonJS, type-checked against the `.d.cts` declarations.
import type { AddressInfo } from 'node:net';
import { keyDashboard } from '@keygate/dashboard/express';
import { apiKeyAuth, createKeygate, type Principal, requireScope } from '@keygate/express';
import express from 'express';

/** `true` only for `any`: a context value typed `any` would fail the assignment below. */
type IsAny<T> = 0 extends 1 & T ? true : false;

async function main(): Promise<void> {
  const keygate = createKeygate();
  const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

  const app = express();
  app.use(keyDashboard({ keygate }));
  app.use('/v1', apiKeyAuth({ keygate }));
  app.get('/v1/data', requireScope('read:data'), (req, res) => {
    const apiKey: Principal | undefined = req.apiKey;
    const typed: IsAny<typeof req.apiKey> = false;
    res.json({ success: typed === false, data: { keyId: apiKey?.id, scopes: apiKey?.scopes } });
  });

  const server = app.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
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
