import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKeygate } from './keygate.js';
import { gracefulShutdown } from './node.js';
import { readiness } from './readiness.js';

const servers: http.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.closeAllConnections();
});

function quiet() {
  return { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
}

/** A server whose `/slow` answers when `release()` is called, and `/health` answers readiness. */
async function serve(keygate = createKeygate({ logger: quiet() })) {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server = http.createServer((req, res) => {
    if (req.url === '/never') return;
    const answer = () => {
      const { status, headers, body } = readiness(keygate);
      const json = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(json),
        ...headers,
      });
      res.end(json);
    };
    if (req.url === '/slow') released.then(answer);
    else answer();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { server, port, keygate, release };
}

/** One keep-alive connection that sends requests and reads raw answers, one at a time. */
function connection(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    for (const wake of waiters.splice(0)) wake();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    send(path: string) {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
    },
    /** The next complete answer (status line, headers and body), lower-cased. */
    async answer(): Promise<string> {
      for (;;) {
        const head = received.indexOf('\r\n\r\n');
        const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? Number.NaN);
        const end = head + 4 + length;
        if (head !== -1 && received.length >= end) {
          const answer = received.slice(0, end);
          received = received.slice(end);
          return answer.toLowerCase();
        }
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    closed,
    destroy: () => socket.destroy(),
  };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('gracefulShutdown', () => {
  it('answers a request in progress with Connection: close, stops accepting, and closes keygate', async () => {
    const { server, port, keygate, release } = await serve();
    const close = vi.spyOn(keygate, 'close');
    const logger = quiet();
    const graceful = gracefulShutdown(server, keygate, { deadlineMs: 5_000, logger });
    const client = connection(port);
    client.send('/slow');
    // Let the request reach the handler.
    await new Promise((resolve) => setTimeout(resolve, 50));

    const done = graceful.shutdown();
    expect(keygate.draining).toBe(true);
    expect(await refused(port)).toBe(true);
    release();
    const answer = await client.answer();
    expect(answer).toMatch(/^http\/1\.1 503/);
    expect(answer).toContain('connection: close');
    await client.closed;
    expect(await done).toBe(true);
    expect(close).toHaveBeenCalledTimes(1);
    expect(close.mock.calls[0]![0]!.deadlineMs).toBeLessThanOrEqual(5_000);
    expect(logger.info).toHaveBeenCalledWith(expect.stringMatching(/shutdown finished in \d+ ms/));
  });

  it('answers a request that comes on an open keep-alive connection: readiness 503, Connection: close', async () => {
    const { server, port, keygate } = await serve();
    const graceful = gracefulShutdown(server, keygate, { deadlineMs: 5_000, logger: quiet() });
    const client = connection(port);
    client.send('/health');
    expect(await client.answer()).toMatch(/^http\/1\.1 200/);

    const done = graceful.shutdown();
    client.send('/health');
    const answer = await client.answer();
    expect(answer).toMatch(/^http\/1\.1 503/);
    expect(answer).toContain('connection: close');
    expect(answer).toContain('"code":"service_unavailable"');
    await client.closed;
    expect(await done).toBe(true);
  });

  it('closes a keep-alive connection that brings no request', async () => {
    const { server, port, keygate } = await serve();
    const graceful = gracefulShutdown(server, keygate, { deadlineMs: 5_000, logger: quiet() });
    const client = connection(port);
    client.send('/health');
    await client.answer();
    const done = graceful.shutdown();
    await client.closed;
    expect(await done).toBe(true);
  });

  it('cuts what does not finish and still resolves by the deadline: a request never answered, a keygate that never closes', async () => {
    const { server, port } = await serve();
    const stuck = { drain: vi.fn(), close: vi.fn(() => new Promise<void>(() => {})) };
    const logger = quiet();
    const graceful = gracefulShutdown(server, stuck, {
      deadlineMs: 600,
      requestsMs: 200,
      logger,
    });
    const client = connection(port);
    client.send('/never');
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(await graceful.shutdown()).toBe(false);
    await client.closed;
    expect(stuck.close).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringContaining('1 connections (1 requests in progress) still open'),
    );
    expect(logger.error).toHaveBeenCalledWith(
      expect.stringMatching(/shutdown cut short at \d+ ms \(deadline 600 ms\)/),
    );
  });

  it('refuses a deadline that cannot work, when it is set up', async () => {
    const { server, keygate } = await serve();
    expect(() => gracefulShutdown(server, keygate, { deadlineMs: 0 })).toThrow(/deadlineMs/);
    expect(() => gracefulShutdown(server, keygate, { requestsMs: Number.NaN })).toThrow(
      /requestsMs/,
    );
  });
});
