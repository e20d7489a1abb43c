/**
 * `@keygate/core/node`: shutting a Node HTTP server down on time. Node only (it drives a
 * `node:http` server and the process's signals), so it is an entry of its own that a Worker
 * bundle never imports.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { KeygateConfigError } from './errors.js';
import type { Keygate } from './keygate.js';
import { withTimeout } from './timeout.js';

/** How long a connection that brings no request is kept open once the server stops listening, in ms. */
const IDLE_GRACE_MS = 500;

export interface GracefulShutdownOptions {
  /** Longest the whole shutdown takes, in ms: past it, connections are cut and it resolves. Default 10,000. */
  deadlineMs?: number;
  /**
   * Part of the deadline that requests in progress may take to finish, in ms; the connections still
   * busy then are closed, and the rest is left to flush. Default: 40% of `deadlineMs`.
   */
  requestsMs?: number;
  /** Closes the app's own resources (its database and Redis clients) after keygate, within what is left. Default: none. */
  onClose?: (remainingMs: number) => Promise<void>;
  /** Where the shutdown's lines go. Default `console`. */
  logger?: Pick<Console, 'info' | 'warn' | 'error'>;
}

export interface GracefulShutdown {
  /**
   * Shuts the server and keygate down (once; later calls get the same promise): resolves `true`
   * when everything finished within the deadline, `false` when it was cut short (logged).
   */
  shutdown(): Promise<boolean>;
  /** Whether `shutdown()` was called. */
  readonly shuttingDown: boolean;
}

/**
 * Prepares `server` to shut down on time; call it before `listen()`. `shutdown()` then:
 * marks keygate as draining (`readiness()` answers 503); stops accepting connections; answers
 * requests in progress, and any that arrive on open keep-alive connections, with
 * `Connection: close` (the connection closes after it); closes connections that bring no request
 * for 500 ms; up to `requestsMs` later, closes the connections still open; flushes the audit trail, usage and
 * leases and closes keygate's backends, then `onClose`, each within what is left of `deadlineMs`,
 * logging what it could not flush. However the clients and backends behave, it resolves by the deadline.
 */
export function gracefulShutdown(
  server: Server,
  keygate: Pick<Keygate, 'drain' | 'close'>,
  options: GracefulShutdownOptions = {},
): GracefulShutdown {
  const { deadlineMs = 10_000, onClose, logger = console } = options;
  const requestsMs = options.requestsMs ?? deadlineMs * 0.4;
  requireDuration('deadlineMs', deadlineMs);
  requireDuration('requestsMs', requestsMs);
  const inFlight = new Set<ServerResponse>();
  /** Requests each open connection has brought, to tell a quiet one from a busy one. */
  const connections = new Map<Socket, number>();
  let shuttingDown = false;
  let done: Promise<boolean> | undefined;

  server.on('connection', (socket: Socket) => {
    connections.set(socket, 0);
    socket.once('close', () => connections.delete(socket));
  });
  // First of the server's request listeners, so the header is set before the app answers.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (shuttingDown) res.setHeader('Connection', 'close');
    const { socket } = req;
    connections.set(socket, (connections.get(socket) ?? 0) + 1);
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });

  /**
   * Waits until every connection is closed, or `ms` has passed. A connection that brings a request
   * is answered with `Connection: close` and closes after it; one that brought none for a whole
   * grace, and has no request in progress, is quiet and closed (`http.Server#close()` would close
   * idle connections at once, under load cutting the requests already on their way on each).
   */
  const closeConnections = async (ms: number): Promise<boolean> => {
    const until = Date.now() + ms;
    const grace = Math.min(IDLE_GRACE_MS, ms / 4);
    let seen = new Map(connections);
    while (connections.size > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(grace, until - Date.now())));
      const busy = new Set(Array.from(inFlight, (res) => res.socket));
      for (const [socket, requests] of connections) {
        if (!busy.has(socket) && seen.get(socket) === requests) socket.destroy();
      }
      seen = new Map(connections);
    }
    return connections.size === 0;
  };

  const run = async (): Promise<boolean> => {
    const started = Date.now();
    const left = () => Math.max(0, deadlineMs - (Date.now() - started));
    keygate.drain();
    // Stops listening, and nothing else: connections are closed below.
    NetServer.prototype.close.call(server);
    for (const res of inFlight) {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    }
    const finished = await closeConnections(Math.min(requestsMs, left()));
    if (!finished) {
      logger.warn(
        `[keygate] shutdown: ${connections.size} connections (${inFlight.size} requests in progress) still open after ${requestsMs} ms were closed`,
      );
    }
    server.closeAllConnections();
    server.close();
    // Leaves a little for `onClose` even when keygate uses all it is given.
    const forKeygate = onClose ? left() * 0.8 : left();
    let ok = finished;
    ok = (await settledWithin(keygate.close({ deadlineMs: forKeygate }), forKeygate)) && ok;
    if (onClose) {
      const remaining = left();
      ok = (await settledWithin(onClose(remaining), remaining)) && ok;
    }
    const took = Date.now() - started;
    if (ok) logger.info(`[keygate] shutdown finished in ${took} ms`);
    else logger.error(`[keygate] shutdown cut short at ${took} ms (deadline ${deadlineMs} ms)`);
    return ok;
  };

  return {
    shutdown() {
      shuttingDown = true;
      done ??= run();
      return done;
    },
    get shuttingDown() {
      return shuttingDown;
    },
  };
}

export interface ShutdownOnSignalsOptions extends GracefulShutdownOptions {
  /** Signals that start the shutdown. Default `['SIGTERM', 'SIGINT']`. */
  signals?: readonly NodeJS.Signals[];
  /** Exit the process when the shutdown is over (code 0, or 1 when it was cut short). Default `true`. */
  exit?: boolean;
}

/**
 * `gracefulShutdown()` started by SIGTERM or SIGINT (a second signal exits at once), exiting the
 * process when it is over: the one call a Node app needs for rolling deploys.
 *
 * ```ts
 * const server = app.listen(3000); // or serve({ fetch: app.fetch }) from @hono/node-server
 * shutdownOnSignals(server, keygate, { onClose: () => database.close() });
 * ```
 */
export function shutdownOnSignals(
  server: Server,
  keygate: Pick<Keygate, 'drain' | 'close'>,
  options: ShutdownOnSignalsOptions = {},
): GracefulShutdown {
  const { signals = ['SIGTERM', 'SIGINT'], exit = true, ...rest } = options;
  const logger = rest.logger ?? console;
  const graceful = gracefulShutdown(server, keygate, rest);
  const onSignal = (signal: NodeJS.Signals) => {
    if (graceful.shuttingDown) {
      logger.warn(`[keygate] ${signal} again: exiting at once`);
      process.exit(1);
    }
    logger.info(`[keygate] ${signal}: shutting down`);
    graceful.shutdown().then((ok) => {
      if (exit) process.exit(ok ? 0 : 1);
    });
  };
  for (const signal of signals) process.on(signal, onSignal);
  return graceful;
}

/** Whether `work` settled without error within `ms`. */
function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(work, ms).then(
    () => true,
    () => false,
  );
}

function requireDuration(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `${name} must be a positive number of milliseconds (got ${String(value)})`,
    );
  }
}
