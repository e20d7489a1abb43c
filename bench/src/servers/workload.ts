import { createHash } from 'node:crypto';

/** The route every contestant serves; only `w_1` is requested. */
export const ROUTE = '/v1/websites/:websiteId/analytics';

/** The reference app's website analytics body (`examples/shared`), computed per request by every contestant. */
export function websiteAnalytics(websiteId: string) {
  const digest = createHash('sha256').update(`website:${websiteId}`).digest();
  return {
    success: true,
    data: {
      websiteId,
      pageviews: digest.readUInt32BE(0) % 100_000,
      visitors: digest.readUInt32BE(4) % 20_000,
      bounceRate: (digest.readUInt32BE(8) % 1000) / 1000,
      avgSessionSeconds: digest.readUInt32BE(12) % 600,
    },
  };
}

/** `PORT` from the environment; 0 (the default) picks a free port. */
export function portFromEnv(): number {
  const port = Number(process.env.PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`PORT must be an integer from 0 to 65535 (got ${process.env.PORT})`);
  }
  return port;
}

/** The line the orchestrator waits for before it sends load. */
export function announceReady(port: number, description: string): void {
  console.log(`READY port=${port} ${description}`);
}

/** On SIGTERM/SIGINT: stop accepting, flush and close backends, exit. */
export function closeOnSignals(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('error while stopping:', error);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
