import { Circuit, type CircuitRetry, declaresOutage } from './circuit.js';
import type { AuditEvent, AuditSink, UsageBatch } from './types.js';

/** A write the sink has not taken yet: a batch of events, or of usage rows. */
type Held = { events: readonly AuditEvent[]; batch?: undefined } | { batch: UsageBatch };

const sizeOf = (held: Held): number => (held.batch ? held.batch.rows.length : held.events.length);

export interface SinkBufferOptions extends CircuitRetry {
  /** Most events and usage rows held while the sink is down; past that the oldest are dropped. */
  maxHeld: number;
  logger: Pick<Console, 'warn' | 'error'> & Partial<Pick<Console, 'info'>>;
  /** Told of the events and usage rows given up because the buffer was full. */
  onDropped: (count: number) => void;
}

/**
 * One audit sink's writes behind a circuit breaker, with a bounded buffer: a layer around the
 * sink's `write` and `writeUsage`, whatever the events and rows are made of. While the sink
 * answers, a write waits for it. The first write that times out or loses its connection opens the
 * circuit: from then on a write is held in memory and resolves at once (no one waits on a sink
 * known to be down), while a background probe retries the oldest held write; once the sink takes
 * it, the rest follow in order. Past `maxHeld` events and rows, the oldest held are given up:
 * counted, and logged once per outage. An outage is what `declaresOutage` says is one (the sink's
 * error has `unavailable: true`, as `PostgresStoreError` has for a lost or silent database, or the
 * call timed out); any other failure is rejected as before, for the caller's own retry.
 */
export class SinkBuffer implements AuditSink {
  readonly sink: AuditSink;
  readonly #circuit: Circuit;
  readonly #maxHeld: number;
  readonly #logger: SinkBufferOptions['logger'];
  readonly #onDropped: (count: number) => void;
  readonly #name: string;
  readonly #held: Held[] = [];
  #heldItems = 0;
  /** Writes of held items under way (the probe's, the drain's): never the ones dropped. */
  readonly #writing = new Set<Held>();
  #droppedThisOutage = 0;
  #draining: Promise<void> | undefined;

  constructor(sink: AuditSink, options: SinkBufferOptions) {
    this.sink = sink;
    this.#maxHeld = options.maxHeld;
    this.#logger = options.logger;
    this.#onDropped = options.onDropped;
    this.#name =
      `audit sink ${sink.constructor?.name && sink.constructor.name !== 'Object' ? sink.constructor.name : ''}`.trim();
    this.#circuit = new Circuit({
      name: this.#name,
      whileDown: `holding up to ${options.maxHeld} events and usage rows for it`,
      probe: () => this.#writeOldest(),
      onClose: () => this.#recovered(),
      isOutage: declaresOutage,
      logger: options.logger,
      retryMs: options.retryMs,
      maxRetryMs: options.maxRetryMs,
    });
  }

  /** Events and usage rows held, not yet written. */
  get pending(): number {
    return this.#heldItems;
  }

  /** Whether the sink is known to be down. */
  get isDown(): boolean {
    return this.#circuit.isOpen;
  }

  write(events: readonly AuditEvent[]): Promise<void> {
    return this.#submit({ events });
  }

  writeUsage(batch: UsageBatch): Promise<void> {
    return this.#submit({ batch });
  }

  /** Resolves once the held writes being drained after an outage are written (or the sink failed again). */
  async settled(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /**
   * Tries every held write now, in order, even while the circuit is open (shutdown: there is no
   * later); stops at the first that fails. Bound it with a deadline.
   */
  async flushHeld(): Promise<void> {
    await this.settled();
    for (const held of [...this.#held]) {
      if (!this.#held.includes(held)) continue;
      try {
        await this.#send(held);
      } catch {
        return;
      }
      this.#release(held);
    }
  }

  /** Stops probing the sink; what is held stays held (`pending`). */
  close(): Promise<void> {
    this.#circuit.close();
    return this.sink.close?.() ?? Promise.resolve();
  }

  #submit(held: Held): Promise<void> {
    if (this.#circuit.isOpen || this.#held.length > 0) {
      this.#hold(held);
      return Promise.resolve();
    }
    return this.#circuit
      .call(() => this.#send(held))
      .catch((error: unknown) => {
        if (!declaresOutage(error)) throw error;
        this.#hold(held);
      });
  }

  #send(held: Held): Promise<void> {
    if (held.batch) return this.sink.writeUsage?.(held.batch) ?? Promise.resolve();
    return this.sink.write(held.events);
  }

  #hold(held: Held): void {
    this.#held.push(held);
    this.#heldItems += sizeOf(held);
    let dropped = 0;
    while (this.#heldItems > this.#maxHeld) {
      // The oldest not being written; the newest write is kept whatever its size.
      const oldest = this.#held.find((item) => !this.#writing.has(item) && item !== held);
      if (!oldest) break;
      const size = sizeOf(oldest);
      this.#held.splice(this.#held.indexOf(oldest), 1);
      this.#heldItems -= size;
      dropped += size;
    }
    if (dropped === 0) return;
    if (this.#droppedThisOutage === 0) {
      this.#logger.warn(
        `[keygate] ${this.#name}: ${this.#maxHeld} events and usage rows held, the most it holds; dropping the oldest until it answers (counted in the audit log's dropped)`,
      );
    }
    this.#droppedThisOutage += dropped;
    this.#onDropped(dropped);
  }

  /** Removes a held write the sink has taken. */
  #release(held: Held): void {
    const index = this.#held.indexOf(held);
    if (index === -1) return;
    this.#held.splice(index, 1);
    this.#heldItems -= sizeOf(held);
  }

  /** The probe: the oldest held write, straight to the sink. */
  async #writeOldest(): Promise<void> {
    const oldest = this.#held[0];
    if (!oldest) return;
    this.#writing.add(oldest);
    try {
      await this.#send(oldest);
    } finally {
      this.#writing.delete(oldest);
    }
    this.#release(oldest);
  }

  #recovered(): void {
    if (this.#droppedThisOutage > 0) {
      this.#logger.warn(
        `[keygate] ${this.#name}: ${this.#droppedThisOutage} events and usage rows were dropped while it was down`,
      );
      this.#droppedThisOutage = 0;
    }
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /** Writes what was held, oldest first, through the circuit: an outage stops it (the probe resumes it). */
  async #drain(): Promise<void> {
    while (this.#held.length > 0 && !this.#circuit.isOpen) {
      const oldest = this.#held[0]!;
      this.#writing.add(oldest);
      try {
        await this.#circuit.call(() => this.#send(oldest));
        this.#release(oldest);
      } catch (error) {
        if (declaresOutage(error)) return;
        // Refused for what it is: retrying would refuse it again and hold up everything behind it.
        this.#release(oldest);
        this.#onDropped(sizeOf(oldest));
        this.#logger.error(`[keygate] ${this.#name} refused a held write; it is dropped:`, error);
      } finally {
        this.#writing.delete(oldest);
      }
    }
  }
}
