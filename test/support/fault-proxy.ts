/**
 * A TCP proxy in front of a backend (Postgres, Redis) that a test switches between three faults:
 *
 * - `pass`: bytes flow both ways (the healthy backend);
 * - `refuse`: open connections are reset and new ones are reset as they arrive (a backend that is
 *   down: clients fail at once);
 * - `silent`: open connections stay open but nothing goes through either way, and new connections
 *   are accepted and never answered (a hung backend or a network black hole: clients wait until
 *   their own timeouts).
 *
 * Going back to `pass` resets the connections that were silenced (their streams lost bytes, as
 * after a real partition); new connections flow again. Only the proxy's own sockets are touched.
 */
import net from 'node:net';

export type FaultMode = 'pass' | 'refuse' | 'silent';

export interface FaultProxy {
  /** `target` with its host and port replaced by the proxy's, e.g. `postgres://postgres@127.0.0.1:41234/db`. */
  url: string;
  port: number;
  readonly mode: FaultMode;
  set(mode: FaultMode): void;
  /** Connections accepted so far, in any mode. */
  readonly accepted: number;
  /** Resets every connection and stops listening. */
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Nothing goes through any more (silenced, or accepted while silent). */
  silenced: boolean;
}

export async function faultProxy(target: string): Promise<FaultProxy> {
  const url = new URL(target);
  const targetPort = Number(url.port);
  const links = new Set<Link>();
  let mode: FaultMode = 'pass';
  let accepted = 0;

  const reset = (link: Link) => {
    links.delete(link);
    link.client.resetAndDestroy();
    link.upstream?.resetAndDestroy();
  };

  const server = net.createServer((client) => {
    accepted++;
    client.on('error', () => {});
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, upstream: null, silenced: mode === 'silent' };
    links.add(link);
    client.on('close', () => {
      links.delete(link);
      link.upstream?.destroy();
    });
    if (link.silenced) return;
    const upstream = net.connect(targetPort, url.hostname);
    link.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => {
      if (!link.silenced) client.destroy();
    });
    client.on('data', (chunk: Buffer) => link.silenced || upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => link.silenced || client.write(chunk));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  const proxied = new URL(target);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);

  return {
    url: proxied.href,
    port,
    get mode() {
      return mode;
    },
    set(next) {
      if (next === mode) return;
      const previous = mode;
      mode = next;
      for (const link of [...links]) {
        if (next === 'refuse' || (previous === 'silent' && link.silenced)) reset(link);
        else if (next === 'silent') link.silenced = true;
      }
    },
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const link of [...links]) reset(link);
        server.close(() => resolve());
      }),
  };
}
