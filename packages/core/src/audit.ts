import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditQuery, AuditReader, AuditSink } from './types.js';

export type AuditQueueFullPolicy = 'drop-oldest' | 'drop-newest';

export interface AuditLogOptions {
  sinks: AuditSink[];
  /** Events written per sink call. Default 500. */
  batchSize?: number;
  /** Longest an event waits before a flush, in ms. Default 200. */
  flushIntervalMs?: number;
  /** Most events held while sinks catch up. Default 1,000,000. */
  maxQueue?: number;
  /** What to give up when the queue is full. Default `'drop-oldest'`. */
  onQueueFull?: AuditQueueFullPolicy;
  logger?: Pick<Console, 'warn' | 'error'>;
}

/**
 * Collects audit events off the request path and writes them to every sink in
 * batches; a failing sink is retried, a slow one never delays a request.
 */
export class AuditLog {
  readonly #sinks: AuditSink[];
  readonly #batchSize: number;
  readonly #maxQueue: number;
  readonly #policy: AuditQueueFullPolicy;
  readonly #logger: Pick<Console, 'warn' | 'error'>;
  #queue: AuditEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #dropped = 0;
  #failures = 0;
  /** Events taken off the queue for the sink call in progress. */
  #inFlight = 0;
  readonly #interval: number;

  constructor(options: AuditLogOptions) {
    this.#sinks = options.sinks;
    this.#batchSize = options.batchSize ?? 500;
    this.#interval = options.flushIntervalMs ?? 200;
    this.#maxQueue = options.maxQueue ?? 1_000_000;
    this.#policy = options.onQueueFull ?? 'drop-oldest';
    this.#logger = options.logger ?? console;
  }

  /** Events given up because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  record(event: Omit<AuditEvent, 'id' | 'at'> & { at?: Date }): void {
    if (this.#sinks.length === 0) return;
    if (this.#queue.length >= this.#maxQueue) {
      this.#countDropped(1);
      if (this.#policy === 'drop-newest') return;
      this.#queue.shift();
    }
    this.#queue.push({ id: randomUUID(), at: event.at ?? new Date(), ...event } as AuditEvent);
    if (this.#queue.length >= this.#batchSize) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), this.#interval).unref();
  }

  /** Writes everything queued so far; resolves when the sinks have it (or gave up after retries). */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#flushing) await this.#flushing;
    if (this.#queue.length === 0) return;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      // Off the queue while in flight, so dropping the oldest queued event never takes an unwritten one in its place.
      const batch = this.#queue.splice(0, this.#batchSize);
      this.#inFlight = batch.length;
      try {
        await Promise.all(this.#sinks.map((sink) => sink.write(batch)));
        this.#failures = 0;
      } catch (error) {
        this.#queue.unshift(...batch);
        const excess = this.#queue.length - this.#maxQueue;
        if (excess > 0) {
          this.#countDropped(excess);
          if (this.#policy === 'drop-newest') this.#queue.length = this.#maxQueue;
          else this.#queue.splice(0, excess);
        }
        this.#failures++;
        this.#logger.error(`[keygate] audit sink failed (attempt ${this.#failures}):`, error);
        // Keep the events and try later; the bounded queue caps what a dead sink costs.
        this.#timer ??= setTimeout(
          () => void this.flush(),
          Math.min(30_000, 100 * 2 ** this.#failures),
        ).unref();
        return;
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  #countDropped(count: number): void {
    const before = this.#dropped;
    this.#dropped += count;
    if (before === 0 || Math.floor(before / 10_000) !== Math.floor(this.#dropped / 10_000)) {
      this.#logger.warn(`[keygate] audit queue full: ${this.#dropped} events dropped`);
    }
  }

  /** Flush and close every sink (graceful shutdown). */
  async close(): Promise<void> {
    for (let attempt = 0; attempt < 5 && this.pending > 0; attempt++) {
      await this.flush();
      if (this.pending > 0) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
    if (this.#timer) clearTimeout(this.#timer);
    await Promise.all(this.#sinks.map((sink) => sink.close?.()));
  }
}

/** The most recent events in memory; the default sink when no database is configured. */
export class MemoryAuditSink implements AuditSink, AuditReader {
  readonly #events: AuditEvent[] = [];
  readonly #capacity: number;

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    this.#events.push(...events);
    if (this.#events.length > this.#capacity) {
      this.#events.splice(0, this.#events.length - this.#capacity);
    }
  }

  async query(query: AuditQuery): Promise<AuditEvent[]> {
    return this.#events
      .filter((e) => query.keyId === undefined || e.keyId === query.keyId)
      .filter((e) => query.ownerId === undefined || e.ownerId === query.ownerId)
      .slice(-(query.limit ?? 100))
      .reverse();
  }
}

/** One JSON object per line, e.g. to stdout for a log shipper. */
export class JsonLinesAuditSink implements AuditSink {
  readonly #write: (line: string) => void;

  constructor(write: (line: string) => void = (line) => process.stdout.write(line)) {
    this.#write = write;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    this.#write(events.map((event) => `${JSON.stringify(event)}\n`).join(''));
  }
}
