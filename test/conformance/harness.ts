import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { createKeygate, type Keygate, type KeyStore, MemoryKeyStore } from '@keygate/core';
import { createApp as createExpressApp } from '../../examples/express/src/app.js';
import { createApp as createHonoApp } from '../../examples/hono/src/app.js';
import { createApp as createKoaApp } from '../../examples/koa/src/app.js';
import type { TrustProxy } from '../../examples/shared/src/runtime.js';

export interface AppConfig {
  /** The framework's proxy trust, as `TRUST_PROXY` gives it: hops or proxy addresses. Default `0`. */
  trustProxy?: TrustProxy;
  /** Loopback address to listen on. Default `127.0.0.1`. */
  host?: '127.0.0.1' | '::1';
}

/** One reference app listening on a real port. */
export interface RunningApp {
  /** `http://127.0.0.1:<port>` (or `http://[::1]:<port>`). */
  origin: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export interface Adapter {
  name: 'hono' | 'express' | 'koa';
  /** The framework's own Node server for the reference app (Hono through `@hono/node-server`). */
  server(keygate: Keygate, config: { trustProxy: TrustProxy }): http.Server;
}

export const adapters: Adapter[] = [
  {
    name: 'hono',
    server: (keygate, config) =>
      createAdaptorServer({ fetch: createHonoApp(keygate, config).fetch }) as http.Server,
  },
  {
    name: 'express',
    server: (keygate, config) => http.createServer(createExpressApp(keygate, config)),
  },
  {
    name: 'koa',
    server: (keygate, config) => http.createServer(createKoaApp(keygate, config).callback()),
  },
];

export async function startApp(
  adapter: Adapter,
  keygate: Keygate,
  config: AppConfig = {},
): Promise<RunningApp> {
  const host = config.host ?? '127.0.0.1';
  const server = adapter.server(keygate, { trustProxy: config.trustProxy ?? 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

export interface RawResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

export interface RawRequest {
  method?: string;
  /** Request target exactly as sent, e.g. `/v1/query/websites?api_key=...`. */
  target: string;
  /** Name and value bytes, written as given (no validation, no trimming). */
  headers?: Array<[string, string | Buffer]>;
}

/**
 * Sends bytes `fetch` and `node:http` refuse to send (NUL, raw UTF-8 in headers, bare `%` in the
 * target) over a plain socket, and reads the response until the server closes the connection.
 */
export function rawRequest(app: RunningApp, request: RawRequest): Promise<RawResponse> {
  const lines: Buffer[] = [
    Buffer.from(`${request.method ?? 'GET'} ${request.target} HTTP/1.1\r\n`),
    Buffer.from(`host: ${app.host.includes(':') ? `[${app.host}]` : app.host}:${app.port}\r\n`),
    Buffer.from('connection: close\r\n'),
  ];
  for (const [name, value] of request.headers ?? []) {
    lines.push(Buffer.from(`${name}: `), Buffer.from(value), Buffer.from('\r\n'));
  }
  lines.push(Buffer.from('\r\n'));
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: app.host, port: app.port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may reset the connection right after answering a request it refuses.
    const finish = (error?: Error) => {
      const response = Buffer.concat(chunks);
      if (response.length === 0) reject(error ?? new Error('the server closed without answering'));
      else resolve(parseResponse(response));
    };
    socket.on('end', () => finish());
    socket.on('error', finish);
    socket.end(Buffer.concat(lines));
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, split === -1 ? raw.length : split).toString('latin1');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${statusLine}`);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = split === -1 ? Buffer.alloc(0) : raw.subarray(split + 4);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = dechunk(body);
  return { status, headers, body: body.toString('utf8') };
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    const lineEnd = body.indexOf('\r\n', offset);
    const size = Number.parseInt(body.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** A store that counts every call made to it, by method, to prove which requests never reach it. */
export function countingStore(store: KeyStore): {
  store: KeyStore;
  calls: (except?: ReadonlyArray<keyof KeyStore>) => number;
} {
  const calls = new Map<PropertyKey, number>();
  const counted = new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(property, (calls.get(property) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store: counted,
    calls: (except = []) =>
      [...calls].reduce(
        (sum, [method, n]) => (except.includes(method as keyof KeyStore) ? sum : sum + n),
        0,
      ),
  };
}

/** A reference app whose store counts calls, with one valid key issued (not counted). */
export interface CountedApp {
  app: RunningApp;
  /** A valid secret key with `read:data`. */
  secret: string;
  /**
   * Store calls made while serving requests. The batched `last_used_at` write is left out: it runs
   * on a timer seconds after a successful request, so it would land on whichever request came next.
   */
  storeCalls(): number;
  close(): Promise<void>;
}

export async function startCountedApp(adapter: Adapter): Promise<CountedApp> {
  const counting = countingStore(new MemoryKeyStore());
  const keygate = createKeygate({ store: counting.store, authFailureLimit: false });
  const { secret } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
  const app = await startApp(adapter, keygate);
  const served = () => counting.calls(['touchLastUsed']);
  const baseline = served();
  return {
    app,
    secret,
    storeCalls: () => served() - baseline,
    async close() {
      await app.close();
      await keygate.close();
    },
  };
}
