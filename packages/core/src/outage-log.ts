/**
 * Warnings about a backend that is down, at most one per cause every 10 s: an outage fails
 * every request, and one line per request would bury everything else in the log.
 */
export class OutageLog {
  readonly #logger: Pick<Console, 'warn'>;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Pick<Console, 'warn'>) {
    this.#logger = logger;
  }

  warn(cause: string, error: unknown): void {
    const now = Date.now();
    const seen = this.#last.get(cause);
    if (seen && now - seen.at < 10_000) {
      seen.suppressed++;
      return;
    }
    const more = seen?.suppressed ? ` (${seen.suppressed} more since the last warning)` : '';
    this.#last.set(cause, { at: now, suppressed: 0 });
    this.#logger.warn(`[keygate] ${cause}${more}:`, error);
  }
}
