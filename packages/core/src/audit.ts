import { randomUUID } from 'node:crypto';
import type { CircuitRetry } from './circuit.js';
import { requestIdOf } from './request-context.js';
import { SinkBuffer } from './sink-buffer.js';
import { withTimeout } from './timeout.js';
import type {
  AuditAction,
  AuditContext,
  AuditEvent,
  AuditQuery,
  AuditReader,
  AuditSink,
  UsageAction,
  UsageBatch,
  UsageCounts,
  UsageQuery,
} from './types.js';
import { UsageCounter, type UsageSubject } from './usage.js';
import { bucketIndex, INTERVAL_MS, isRateLimited } from './usage-window.js';

/**
 * What happens to an event recorded while `maxQueue` events wait for the sinks:
 * - `'drop-oldest'`: the oldest waiting event is given up (counted in `dropped`);
 * - `'drop-newest'`: the new event is given up (counted in `dropped`);
 * - `'keep'`: nothing is given up; the queue grows past `maxQueue`, memory being the only bound
 *   (counted in `overflowed`, with a warning every 10,000 events).
 */
export type AuditQueueFullPolicy = 'drop-oldest' | 'drop-newest' | 'keep';

export interface AuditLogOptions {
  sinks: AuditSink[];
  /** Events written per sink call; a flush starts as soon as this many wait. Default 1,000. */
  batchSize?: number;
  /** Longest an event waits before a flush, in ms. Default 200. */
  flushIntervalMs?: number;
  /** Most events waiting while sinks catch up (the batch being written not included). Default 1,000,000. */
  maxQueue?: number;
  /** What to do when the queue is full. Default `'drop-oldest'`. */
  onQueueFull?: AuditQueueFullPolicy;
  /** Longest `close()` waits for the sinks before giving up on what is left, in ms. Default 10,000. */
  closeTimeoutMs?: number;
  /**
   * Most events and usage rows held for one sink while it is down (after a write timed out or lost
   * its connection); past that the oldest are dropped, counted in `dropped` and logged once per
   * outage. Default 100,000.
   */
  maxHeldPerSink?: number;
  /** How soon a sink that is down is probed again. Default: about 500 ms, doubling up to 5 s. */
  circuitBreaker?: CircuitRetry;
  /**
   * Most distinct usage rows waiting (key, client, method, path and minute); a flush starts
   * early at this many. While the sinks cannot take them, uses that would add a row past it are
   * given up (counted in `dropped`); uses of rows already waiting are still counted. Default 100,000.
   */
  maxUsageRows?: number;
  logger?: Pick<Console, 'warn' | 'error'>;
}

/** What an audit record says about the key (or session) involved, when one is. */
export interface AuditSubject {
  id: string | null;
  start: string | null;
  ownerId: string | null;
}

/** An event to record; `id` and `at` are filled in when absent. */
export type AuditRecord = Omit<AuditEvent, 'id' | 'at'> & { id?: string; at?: Date };

export interface AuditRecordOptions {
  /** A sink that already has the event (a key store wrote it with the change): the others get it. */
  except?: AuditSink;
}

/** Marks a success event that the sinks keeping usage have as a count already. */
const COUNTED = Symbol('counted');

function keepsUsage(sink: AuditSink): boolean {
  return typeof sink.writeUsage === 'function';
}

/**
 * First in, first out, with every operation O(1) amortised: an array's `shift` and `splice(0, n)`
 * copy the whole queue, which a backlog of a million events cannot afford per request.
 */
class EventQueue {
  #items: AuditEvent[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(event: AuditEvent): void {
    this.#items.push(event);
  }

  /** Removes and returns the oldest `count` events. */
  take(count: number): AuditEvent[] {
    const taken = this.#items.slice(this.#head, this.#head + count);
    this.drop(taken.length);
    return taken;
  }

  /** Puts events taken by `take` back at the front, in order. */
  putBack(events: readonly AuditEvent[]): void {
    if (this.#head >= events.length) {
      this.#head -= events.length;
      for (let i = 0; i < events.length; i++) this.#items[this.#head + i] = events[i]!;
    } else {
      this.#items = [...events, ...this.#items.slice(this.#head)];
      this.#head = 0;
    }
  }

  /** Gives up the oldest `count` events. */
  drop(count: number): void {
    this.#head = Math.min(this.#head + count, this.#items.length);
    // Copy out the live part once half the array is spent: amortised O(1), at most twice the memory.
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Keeps the oldest `count` events, giving up the rest. */
  truncate(count: number): void {
    if (count < this.length) this.#items.length = this.#head + count;
  }
}

/**
 * Collects audit events off the request path and writes them to every sink in
 * batches; a failing sink is retried, a slow one never delays a request. Successes are
 * counted per minute for the sinks that keep usage, and recorded as events for the others.
 */
export class AuditLog {
  readonly #sinks: AuditSink[];
  /** Each sink's writes, behind its own circuit breaker and buffer. */
  readonly #buffers: Map<AuditSink, SinkBuffer>;
  readonly #batchSize: number;
  readonly #maxQueue: number;
  readonly #policy: AuditQueueFullPolicy;
  readonly #logger: Pick<Console, 'warn' | 'error'>;
  readonly #interval: number;
  readonly #closeTimeout: number;
  /** Events some sinks must not get: a sink that already has the event, or `COUNTED`. */
  readonly #except = new WeakMap<AuditEvent, AuditSink | typeof COUNTED>();
  /** Counts successes for the sinks that keep usage; absent when none does. */
  readonly #usage: UsageCounter | undefined;
  /** Whether some sink wants every success as an event. */
  readonly #successEvents: boolean;
  readonly #queue = new EventQueue();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #dropped = 0;
  #overflowed = 0;
  #failures = 0;
  /** Events taken off the queue for the sink call in progress. */
  #inFlight = 0;

  constructor(options: AuditLogOptions) {
    this.#sinks = options.sinks;
    this.#closeTimeout = options.closeTimeoutMs ?? 10_000;
    this.#batchSize = options.batchSize ?? 1000;
    this.#interval = options.flushIntervalMs ?? 200;
    this.#maxQueue = options.maxQueue ?? 1_000_000;
    this.#policy = options.onQueueFull ?? 'drop-oldest';
    this.#logger = options.logger ?? console;
    const held = {
      maxHeld: options.maxHeldPerSink ?? 100_000,
      logger: this.#logger,
      onDropped: (count: number) => this.#countDropped(count),
      ...options.circuitBreaker,
    };
    this.#buffers = new Map(this.#sinks.map((sink) => [sink, new SinkBuffer(sink, held)]));
    const usageSinks = this.#sinks.filter(keepsUsage);
    this.#successEvents = usageSinks.length < this.#sinks.length;
    this.#usage =
      usageSinks.length === 0
        ? undefined
        : new UsageCounter({
            sinks: usageSinks.map((sink) => this.#buffers.get(sink)!),
            maxRows: options.maxUsageRows ?? 100_000,
            logger: this.#logger,
            onDropped: (count) => this.#countDropped(count),
          });
  }

  /** Events given up because the queue was full, and uses given up because too many usage rows waited. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events queued past `maxQueue` under the `'keep'` policy (none were given up). */
  get overflowed(): number {
    return this.#overflowed;
  }

  /** Events and counted uses not yet written: queued, in the sink call in progress, or held for a sink that is down. */
  get pending(): number {
    return this.#queue.length + this.#inFlight + (this.#usage?.pending ?? 0) + this.#held();
  }

  /** Events and usage rows held for sinks that are down. */
  #held(): number {
    let held = 0;
    for (const buffer of this.#buffers.values()) held += buffer.pending;
    return held;
  }

  /** Whether some sink wants every success as an event (one keeps no usage counts): only then does a success's detail matter. */
  get keepsEveryUse(): boolean {
    return this.#successEvents;
  }

  /** Whether `sink` is one of the sinks this log writes to. */
  writesTo(sink: AuditSink): boolean {
    return this.#sinks.includes(sink);
  }

  /** Queues an event and returns at once; the sinks get it with the next batch. */
  record(event: AuditRecord, options?: AuditRecordOptions): void {
    const except = options?.except;
    if (this.#sinks.length === 0 || (except && this.#sinks.every((s) => s === except))) return;
    // Complete events (a key change's, already stored with it) keep their id; the rest get one.
    this.#enqueue(
      (event.id !== undefined && event.at !== undefined
        ? event
        : { id: randomUUID(), at: new Date(), ...event }) as AuditEvent,
      except,
    );
  }

  /** Records a failure of a request (an authentication, a check) and returns at once. */
  recordFailure(
    action: AuditAction,
    reason: string,
    subject: AuditSubject | null,
    ctx: AuditContext,
    detail: Record<string, unknown> | null = null,
  ): void {
    if (this.#sinks.length === 0) return;
    this.#enqueue(
      requestEvent(action, 'failure', reason, subject, ctx, detail, new Date()),
      undefined,
    );
  }

  /**
   * Records a success (an authentication, a passed check) and returns at once: a count on its
   * minute's usage row for the sinks that keep usage, an event for the sinks that want every one.
   * `detail` goes into the event (a caller can skip building it unless `keepsEveryUse`).
   */
  recordUse(
    action: UsageAction,
    subject: UsageSubject,
    ctx: AuditContext,
    detail: Record<string, unknown> | null = null,
  ): void {
    const now = Date.now();
    this.#usage?.count(action, subject, ctx, now);
    if (!this.#successEvents) return;
    const event = requestEvent(action, 'success', null, subject, ctx, detail, new Date(now));
    this.#enqueue(event, this.#usage ? COUNTED : undefined);
  }

  /** The latest use of each of `keyIds` that this log has counted and not yet written. */
  pendingLastUse(keyIds: readonly string[]): Map<string, Date> {
    return this.#usage?.lastSeen(keyIds) ?? new Map();
  }

  #enqueue(event: AuditEvent, except: AuditSink | typeof COUNTED | undefined): void {
    if (this.#queue.length >= this.#maxQueue) {
      if (this.#policy === 'keep') this.#countOverflow();
      else {
        this.#countDropped(1);
        if (this.#policy === 'drop-newest') return;
        this.#queue.drop(1);
      }
    }
    if (except) this.#except.set(event, except);
    this.#queue.push(event);
    this.#schedule();
  }

  #schedule(): void {
    // A failing sink is being retried with backoff; its timer drains what arrives meanwhile.
    if (this.#failures > 0) return;
    // A drain in progress keeps writing until the queue is empty: one more caller would only wait.
    if (this.#queue.length >= this.#batchSize && !this.#flushing) void this.#flushEvents();
    else this.#timer ??= setTimeout(() => void this.#flushEvents(), this.#interval).unref();
  }

  /** Writes everything recorded so far, events and counted uses; resolves when the sinks have it (or failed). */
  async flush(): Promise<void> {
    await Promise.all([this.#flushEvents(), this.#usage?.flush()]);
    await Promise.all(Array.from(this.#buffers.values(), (buffer) => buffer.settled()));
  }

  async #flushEvents(): Promise<void> {
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
      const batch = this.#queue.take(this.#batchSize);
      this.#inFlight = batch.length;
      try {
        await Promise.all(this.#sinks.map((sink) => this.#write(sink, batch)));
        this.#failures = 0;
      } catch (error) {
        this.#queue.putBack(batch);
        const excess = this.#policy === 'keep' ? 0 : this.#queue.length - this.#maxQueue;
        if (excess > 0) {
          this.#countDropped(excess);
          if (this.#policy === 'drop-newest') this.#queue.truncate(this.#maxQueue);
          else this.#queue.drop(excess);
        }
        this.#failures++;
        this.#logger.error(`[keygate] audit sink failed (attempt ${this.#failures}):`, error);
        // Keep the events and try later; the bounded queue caps what a dead sink costs.
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = setTimeout(
          () => void this.#flushEvents(),
          Math.min(30_000, 100 * 2 ** this.#failures),
        ).unref();
        return;
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  #write(sink: AuditSink, batch: AuditEvent[]): Promise<void> | undefined {
    const buffer = this.#buffers.get(sink)!;
    if (!batch.some((event) => this.#except.has(event))) return buffer.write(batch);
    const counted = this.#usage !== undefined && keepsUsage(sink) ? COUNTED : undefined;
    const events = batch.filter((event) => {
      const except = this.#except.get(event);
      return except === undefined || (except !== sink && except !== counted);
    });
    return events.length > 0 ? buffer.write(events) : undefined;
  }

  #countDropped(count: number): void {
    const before = this.#dropped;
    this.#dropped += count;
    if (before === 0 || Math.floor(before / 10_000) !== Math.floor(this.#dropped / 10_000)) {
      this.#logger.warn(`[keygate] audit queue full: ${this.#dropped} events dropped`);
    }
  }

  #countOverflow(): void {
    if (this.#overflowed++ % 10_000 === 0) {
      this.#logger.warn(
        `[keygate] audit queue past its bound of ${this.#maxQueue}: ${this.#queue.length + 1} events waiting (none dropped)`,
      );
    }
  }

  /**
   * Flushes and closes every sink (graceful shutdown) within `deadlineMs` (default
   * `closeTimeoutMs`): a sink that never answers cannot hold shutdown up; what could not be written
   * by then is logged.
   */
  async close(deadlineMs = this.#closeTimeout): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    const left = () => Math.max(0, deadline - Date.now());
    const buffers = [...this.#buffers.values()];
    const finished = await withinDeadline(async () => {
      for (let attempt = 0; attempt < 5 && this.pending > 0; attempt++) {
        await this.flush();
        // What is held for a sink that is down gets one more try now: there is no later.
        await Promise.all(buffers.map((buffer) => buffer.flushHeld()));
        if (this.pending > 0) {
          await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, left())));
        }
      }
    }, deadlineMs);
    if (this.#timer) clearTimeout(this.#timer);
    this.#usage?.stop();
    if (!finished || this.pending > 0) {
      const events = this.#queue.length + this.#inFlight;
      const uses = this.#usage?.pending ?? 0;
      const held = this.#held();
      this.#logger.error(
        `[keygate] audit: ${events} events${uses > 0 ? ` and ${uses} counted uses` : ''}${held > 0 ? `, and ${held} events and usage rows held for a sink that was down,` : ''} could not be written before close`,
      );
    }
    await withinDeadline(() => Promise.all(buffers.map((buffer) => buffer.close())), left());
  }
}

/** Runs `work`: `true` once it has finished, `false` if it failed or had not finished within `ms`. */
function withinDeadline(work: () => Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(work(), ms).then(
    () => true,
    () => false,
  );
}

/**
 * The most recent events in memory; the default sink when no database is configured. It keeps
 * usage too: successful authentications per key and minute (up to 10 × `capacity` of them, the
 * oldest given up first), enough for `usage()`; passed checks are not kept.
 */
export class MemoryAuditSink implements AuditSink, AuditReader {
  readonly #events: AuditEvent[] = [];
  readonly #capacity: number;
  /** Successful authentications by key and minute. */
  readonly #served = new Map<
    string,
    { keyId: string; minute: number; count: number; lastSeen: number }
  >();
  /** Ids of the latest usage batches, so a retried one is not counted twice. */
  readonly #batches = new Set<string>();

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    this.#events.push(...events);
    if (this.#events.length > this.#capacity) {
      this.#events.splice(0, this.#events.length - this.#capacity);
    }
  }

  async writeUsage(batch: UsageBatch): Promise<void> {
    if (this.#batches.has(batch.id)) return;
    this.#batches.add(batch.id);
    if (this.#batches.size > 1_000) this.#batches.delete(this.#batches.values().next().value!);
    for (const row of batch.rows) {
      if (row.authenticated === 0) continue;
      const minute = row.minute.getTime();
      const key = `${row.keyId}\0${minute}`;
      const lastSeen = row.lastSeen.getTime();
      const served = this.#served.get(key);
      if (served) {
        served.count += row.authenticated;
        served.lastSeen = Math.max(served.lastSeen, lastSeen);
      } else
        this.#served.set(key, { keyId: row.keyId, minute, count: row.authenticated, lastSeen });
    }
    for (const key of this.#served.keys()) {
      if (this.#served.size <= 10 * this.#capacity) break;
      this.#served.delete(key);
    }
  }

  async query(query: AuditQuery): Promise<AuditEvent[]> {
    return this.#events
      .filter((e) => query.keyId === undefined || e.keyId === query.keyId)
      .filter((e) => query.ownerId === undefined || e.ownerId === query.ownerId)
      .slice(-(query.limit ?? 100))
      .reverse();
  }

  async lastUsed(keyIds: readonly string[]): Promise<Map<string, Date>> {
    const wanted = new Set(keyIds);
    const latest = new Map<string, Date>();
    for (const { keyId, lastSeen } of this.#served.values()) {
      if (!wanted.has(keyId)) continue;
      if ((latest.get(keyId)?.getTime() ?? -1) < lastSeen) latest.set(keyId, new Date(lastSeen));
    }
    return latest;
  }

  async usage(query: UsageQuery): Promise<UsageCounts[]> {
    const buckets = new Map<number, UsageCounts>();
    const bucketAt = (time: number): UsageCounts | undefined => {
      const index = bucketIndex(time, query);
      if (index === null) return undefined;
      let bucket = buckets.get(index);
      if (!bucket) {
        const start = new Date(query.from.getTime() + index * INTERVAL_MS[query.interval]);
        bucket = { start, served: 0, failed: 0, rateLimited: 0 };
        buckets.set(index, bucket);
      }
      return bucket;
    };
    for (const served of this.#served.values()) {
      if (served.keyId !== query.keyId) continue;
      const bucket = bucketAt(served.minute);
      if (bucket) bucket.served += served.count;
    }
    for (const event of this.#events) {
      if (event.keyId !== query.keyId || event.outcome !== 'failure') continue;
      const bucket = bucketAt(event.at.getTime());
      if (bucket && isRateLimited(event)) bucket.rateLimited++;
      else if (bucket) bucket.failed++;
    }
    return [...buckets.values()];
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

/** The event of a request's authentication or check: its subject and the request's audit fields. */
function requestEvent(
  action: AuditAction,
  outcome: AuditEvent['outcome'],
  reason: string | null,
  subject: AuditSubject | null,
  ctx: AuditContext,
  detail: Record<string, unknown> | null,
  at: Date,
): AuditEvent {
  return {
    id: randomUUID(),
    at,
    action,
    outcome,
    reason,
    keyId: subject?.id ?? null,
    keyStart: subject?.start ?? null,
    ownerId: subject?.ownerId ?? null,
    actor: null,
    ip: ctx.ip,
    userAgent: ctx.userAgent,
    method: ctx.method,
    path: ctx.path,
    requestId: requestIdOf(ctx),
    detail,
  };
}
