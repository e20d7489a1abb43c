import { randomUUID } from 'node:crypto';
import type { AuditContext, AuditSink, UsageAction, UsageBatch, UsageRow } from './types.js';

/** Whom a use is counted against: a key, or a session. */
export interface UsageSubject {
  id: string;
  start: string | null;
  ownerId: string | null;
}

/** A usage row while it is being counted: times in ms, so a request allocates nothing. */
interface Tally {
  minute: number;
  keyId: string;
  keyStart: string | null;
  ownerId: string | null;
  ip: string | null;
  userAgent: string | null;
  method: string | null;
  path: string | null;
  authenticated: number;
  scopeChecks: number;
  resourceChecks: number;
  firstSeen: number;
  lastSeen: number;
}

/** The field of a row that counts each action. */
const FIELD = {
  'auth.succeeded': 'authenticated',
  'scope.checked': 'scopeChecks',
  'resource.checked': 'resourceChecks',
} as const satisfies Record<UsageAction, keyof Tally>;

const MINUTE = 60_000;
/** Instances write their ended minute at different moments within this spread, not all at once. */
const FLUSH_SPREAD_MS = 5_000;

export interface UsageCounterOptions {
  /** Sinks that keep usage (each has `writeUsage`). */
  sinks: AuditSink[];
  /** Most distinct rows waiting; see `AuditLogOptions.maxUsageRows`. */
  maxRows: number;
  logger: Pick<Console, 'error'>;
  /** Told of every use given up because `maxRows` rows were waiting and could not be written. */
  onDropped: (count: number) => void;
}

/**
 * Counts successes per minute in memory and writes them as usage rows: a request costs a map
 * lookup and an increment per success (its authentication and its passed checks share one row),
 * and a row is written once its minute is over (a few seconds after), so a busy key costs a row a
 * minute instead of events a request. `flush()` writes everything
 * at once (graceful shutdown). A batch that fails is kept as it is (same id, so a sink that has it
 * already skips it) and retried with backoff, while new uses go on being counted beside it.
 */
export class UsageCounter {
  readonly #sinks: AuditSink[];
  readonly #maxRows: number;
  readonly #logger: Pick<Console, 'error'>;
  readonly #onDropped: (count: number) => void;
  #rows = new Map<string, Tally>();
  /** Uses counted in `#rows`. */
  #counted = 0;
  /** The batch being written, or waiting to be retried after a failure. */
  #held: { batch: UsageBatch; uses: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #failures = 0;

  constructor(options: UsageCounterOptions) {
    this.#sinks = options.sinks;
    this.#maxRows = options.maxRows;
    this.#logger = options.logger;
    this.#onDropped = options.onDropped;
  }

  /** Uses counted and not yet written (including a batch being written or retried). */
  get pending(): number {
    return this.#counted + (this.#held?.uses ?? 0);
  }

  count(action: UsageAction, subject: UsageSubject, ctx: AuditContext, now: number): void {
    const minute = now - (now % MINUTE);
    // An empty field is stored as null; NUL cannot occur in an HTTP method, path or header value,
    // so the fields cannot run into each other.
    const key = `${minute}\0${subject.id}\0${subject.start ?? ''}\0${subject.ownerId ?? ''}\0${ctx.ip ?? ''}\0${ctx.method ?? ''}\0${ctx.path ?? ''}\0${ctx.userAgent ?? ''}`;
    const tally = this.#rows.get(key);
    if (tally !== undefined) {
      tally[FIELD[action]]++;
      if (now > tally.lastSeen) tally.lastSeen = now;
    } else {
      if (!this.#admit()) return;
      const added: Tally = {
        minute,
        keyId: subject.id,
        keyStart: subject.start || null,
        ownerId: subject.ownerId || null,
        ip: ctx.ip || null,
        userAgent: ctx.userAgent || null,
        method: ctx.method || null,
        path: ctx.path || null,
        authenticated: 0,
        scopeChecks: 0,
        resourceChecks: 0,
        firstSeen: now,
        lastSeen: now,
      };
      added[FIELD[action]] = 1;
      this.#rows.set(key, added);
    }
    this.#counted++;
    if (this.#timer === undefined) this.#scheduleAfterMinute(now);
  }

  /** Writes the minutes that are over shortly after the one of `now` ends. */
  #scheduleAfterMinute(now: number): void {
    const delay = MINUTE - (now % MINUTE) + Math.random() * FLUSH_SPREAD_MS;
    this.#timer = setTimeout(() => void this.#flush(false), delay).unref();
  }

  /** Whether a new row may be added: past `maxRows`, a flush makes room, unless one is under way. */
  #admit(): boolean {
    if (this.#rows.size < this.#maxRows) return true;
    if (!this.#flushing && this.#failures === 0) {
      // Seals the rows before its first await: the map is empty again when this returns.
      void this.#flush(true);
      return true;
    }
    this.#onDropped(1);
    return false;
  }

  /** Writes every use counted so far (and a batch waiting for a retry); resolves when the sinks have them or failed. */
  flush(): Promise<void> {
    return this.#flush(true);
  }

  /** `all`: the minute in progress too; otherwise only the minutes that are over. */
  async #flush(all: boolean): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#flushing) await this.#flushing;
    if (this.#held || this.#rows.size > 0) {
      this.#flushing = this.#drain(all).finally(() => {
        this.#flushing = undefined;
      });
      await this.#flushing;
    }
    // Rows of the minute in progress wait for it to end (a failed write has its retry timer set).
    if (this.#rows.size > 0 && this.#timer === undefined) this.#scheduleAfterMinute(Date.now());
  }

  async #drain(all: boolean): Promise<void> {
    if (this.#held && !(await this.#write(this.#held))) return;
    const sealed = this.#seal(all);
    if (sealed) await this.#write(sealed);
  }

  /** Takes the rows to write out of the count: all of them, or those of the minutes that are over. */
  #seal(all: boolean): { batch: UsageBatch; uses: number } | undefined {
    let tallies = this.#rows;
    let uses = this.#counted;
    if (all) {
      this.#rows = new Map();
      this.#counted = 0;
    } else {
      const now = Date.now();
      const current = now - (now % MINUTE);
      tallies = new Map();
      uses = 0;
      for (const [key, tally] of this.#rows) {
        if (tally.minute >= current) continue;
        tallies.set(key, tally);
        uses += tally.authenticated + tally.scopeChecks + tally.resourceChecks;
        this.#rows.delete(key);
      }
      this.#counted -= uses;
    }
    if (tallies.size === 0) return undefined;
    const rows: UsageRow[] = Array.from(tallies.values(), (t) => ({
      ...t,
      minute: new Date(t.minute),
      firstSeen: new Date(t.firstSeen),
      lastSeen: new Date(t.lastSeen),
    }));
    return { batch: { id: randomUUID(), rows }, uses };
  }

  async #write(held: { batch: UsageBatch; uses: number }): Promise<boolean> {
    this.#held = held;
    try {
      await Promise.all(this.#sinks.map((sink) => sink.writeUsage?.(held.batch)));
    } catch (error) {
      this.#failures++;
      this.#logger.error(`[keygate] usage sink failed (attempt ${this.#failures}):`, error);
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(
        () => void this.#flush(false),
        Math.min(30_000, 100 * 2 ** this.#failures),
      ).unref();
      return false;
    }
    this.#held = undefined;
    this.#failures = 0;
    return true;
  }

  /** Stops the timer; what is still pending stays pending. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
