// Koa 2 or 3 from TypeScript (ESM), type-checked with `nodenext` and `bundler` resolution.
import type { AddressInfo } from 'node:net';
import { keyDashboard } from '@keygate/dashboard/koa';
import {
  type ApiKeyState,
  apiKeyAuth,
  createKeygate,
  type Principal,
  requireScope,
} from '@keygate/koa';
import Koa from 'koa';

/** `true` only for `any`: a context value typed `any` would fail the assignment below. */
type IsAny<T> = 0 extends 1 & T ? true : false;

const keygate = createKeygate();
const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:data'] });

const app = new Koa<ApiKeyState>();
app.use(keyDashboard({ keygate }));
app.use(apiKeyAuth({ keygate }));
app.use(requireScope('read:data'));
app.use((ctx) => {
  const apiKey: Principal = ctx.state.apiKey;
  const typed: IsAny<typeof ctx.state.apiKey> = false;
  ctx.body = { success: typed === false, data: { keyId: apiKey.id, scopes: apiKey.scopes } };
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
