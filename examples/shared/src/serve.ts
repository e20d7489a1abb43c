import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { shutdownOnSignals } from '@keygate/core/node';
import {
  bootstrapMessage,
  openRuntime,
  portFrom,
  type Runtime,
  shutdownDeadlineFrom,
  type TrustProxy,
  trustProxyFrom,
} from './runtime.js';

/**
 * Runs a reference app from the environment: opens keygate's backends, listens on `HOST`:`PORT`,
 * logs one line when listening (and the bootstrap key on a first start), and on SIGTERM or SIGINT
 * shuts down within `KEYGATE_SHUTDOWN_MS` (10 s): `/health` answers 503, connections close,
 * the audit trail, usage and leases are flushed.
 */
export async function serveReferenceApp(
  framework: string,
  createServer: (runtime: Runtime, config: { trustProxy: TrustProxy }) => Server,
): Promise<void> {
  const port = portFrom();
  const host = process.env.HOST ?? '127.0.0.1';
  let runtime: Runtime;
  let trustProxy: TrustProxy;
  let deadlineMs: number;
  try {
    trustProxy = trustProxyFrom();
    deadlineMs = shutdownDeadlineFrom();
    runtime = await openRuntime();
  } catch (error) {
    // A setup problem (bad setting, database locked or unreachable) is a message for the operator, not a crash.
    console.error(
      `keygate reference app (${framework}) could not start: ${(error as Error).message}`,
    );
    process.exit(1);
  }
  const server = createServer(runtime, { trustProxy });
  shutdownOnSignals(server, runtime.keygate, { deadlineMs, onClose: () => runtime.close() });
  server.listen(port, host, () => {
    const url = `http://localhost:${(server.address() as AddressInfo).port}`;
    console.log(
      `keygate reference app (${framework}) listening on ${url} (${runtime.description}); key-management page: ${url}/dashboard`,
    );
    if (runtime.bootstrap) console.log(bootstrapMessage(runtime.bootstrap, url));
  });
}
