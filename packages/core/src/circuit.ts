import { isKeygateError } from './errors.js';

/** How a backend that is down is probed: about `retryMs` after it failed, doubling up to `maxRetryMs`, jittered. */
export interface CircuitRetry {
  /** First probe about this long after the failure, in ms. Default 500. */
  retryMs?: number;
  /** Longest wait between two probes, in ms. Default 5,000. */
  maxRetryMs?: number;
}

export interface CircuitOptions extends CircuitRetry {
  /** The backend, for log lines: `key store`, `audit sink PostgresAuditSink`. */
  name: string;
  /** What is done without the backend while it is down, for the warning. */
  whileDown: string;
  /** The one background call that tells whether the backend answers again. */
  probe: () => Promise<unknown>;
  /** Whether a failed call says the backend is down. Default `isOutage`. */
  isOutage?: (error: unknown) => boolean;
  /** Called when the circuit closes again (the probe got an answer). */
  onClose?: () => void;
  logger: Pick<Console, 'warn'> & Partial<Pick<Console, 'info'>>;
}

/** Rejects a call at once, without calling the backend: it is known to be down. */
export class BackendUnavailableError extends Error {
  readonly code = 'BACKEND_UNAVAILABLE';
  /** Whole seconds until the next probe, at least 1: what `Retry-After` says. */
  readonly retryAfterSeconds: number;

  constructor(name: string, cause: unknown, retryAfterSeconds: number) {
    super(`${name} is unavailable (${describe(cause)})`, { cause });
    this.name = 'BackendUnavailableError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Whether `error` says the backend is down (a timeout, a lost connection) rather than that it
 * refused this one call: a `KeygateError` is the caller's fault, and a backend's error may say
 * which it is with `unavailable` (`PostgresStoreError` does). Any other error counts as an outage.
 */
export function isOutage(error: unknown): boolean {
  if (isKeygateError(error)) return false;
  const unavailable = (error as { unavailable?: unknown } | null)?.unavailable;
  return typeof unavailable === 'boolean' ? unavailable : true;
}

/**
 * Whether `error` says for sure that the backend is down: it says so itself (`unavailable: true`),
 * or the call timed out, or a circuit refused it. A sink's other errors are retried by its caller.
 */
export function declaresOutage(error: unknown): boolean {
  if (error instanceof BackendUnavailableError) return true;
  const { unavailable, code } = (error ?? {}) as { unavailable?: unknown; code?: unknown };
  return unavailable === true || code === 'TIMEOUT';
}

/**
 * A circuit breaker for one backend. Closed, calls go through; the first that times out or loses
 * its connection opens it. Open, every call is rejected at once with `BackendUnavailableError`
 * (and so are the calls still waiting when it opened: the backend they wait on is gone), while one
 * background probe at a time checks the backend, after a short jittered delay that doubles with
 * each failed probe. The first probe that gets an answer closes it. One warning when it opens, one
 * line when it closes.
 */
export class Circuit {
  readonly #name: string;
  readonly #whileDown: string;
  readonly #probe: () => Promise<unknown>;
  readonly #onClose: (() => void) | undefined;
  readonly #isOutage: (error: unknown) => boolean;
  readonly #logger: CircuitOptions['logger'];
  readonly #retryMs: number;
  readonly #maxRetryMs: number;
  /** Rejects each call in progress; called when the circuit opens. */
  readonly #waiting = new Set<(error: unknown) => void>();
  #open = false;
  #cause: unknown;
  #openedAt = 0;
  #failedProbes = 0;
  #nextProbeAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #refused = 0;
  #closed = false;

  constructor(options: CircuitOptions) {
    this.#name = options.name;
    this.#whileDown = options.whileDown;
    this.#probe = options.probe;
    this.#onClose = options.onClose;
    this.#isOutage = options.isOutage ?? isOutage;
    this.#logger = options.logger;
    this.#retryMs = options.retryMs ?? 500;
    this.#maxRetryMs = Math.max(this.#retryMs, options.maxRetryMs ?? 5_000);
  }

  /** Whether calls are being refused without reaching the backend. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Calls refused while open, since the circuit last opened. */
  get refused(): number {
    return this.#refused;
  }

  /** `run()`, unless the backend is known to be down; a failure that is an outage opens the circuit. */
  call<T>(run: () => PromiseLike<T>): Promise<T> {
    if (this.#open) return Promise.reject(this.unavailable());
    return new Promise<T>((resolve, reject) => {
      this.#waiting.add(reject);
      const settle = () => this.#waiting.delete(reject);
      let answer: PromiseLike<T>;
      try {
        answer = run();
      } catch (error) {
        settle();
        this.#failed(error);
        reject(error);
        return;
      }
      answer.then(
        (value) => {
          settle();
          resolve(value);
        },
        (error: unknown) => {
          settle();
          this.#failed(error);
          reject(error);
        },
      );
    });
  }

  /** The error a call gets while the circuit is open (counted as refused). */
  unavailable(): BackendUnavailableError {
    this.#refused++;
    const wait = Math.max(0, this.#nextProbeAt - Date.now());
    return new BackendUnavailableError(
      this.#name,
      this.#cause,
      Math.max(1, Math.ceil(wait / 1000)),
    );
  }

  /** Opens the circuit for `cause` (a call that failed elsewhere, e.g. a write a buffer holds now). */
  trip(cause: unknown): void {
    if (this.#closed || this.#open) return;
    this.#open = true;
    this.#cause = cause;
    this.#openedAt = Date.now();
    this.#failedProbes = 0;
    this.#refused = 0;
    this.#logger.warn(
      `[keygate] ${this.#name} unavailable (${describe(cause)}); ${this.#whileDown}, without calling it until a background probe gets an answer`,
    );
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const reject of waiting) reject(this.unavailable());
    this.#schedule();
  }

  /** Stops probing (the instance is closing). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #failed(error: unknown): void {
    if (this.#isOutage(error)) this.trip(error);
  }

  #schedule(): void {
    if (this.#closed) return;
    const base = Math.min(this.#maxRetryMs, this.#retryMs * 2 ** this.#failedProbes);
    // Half fixed, half random: instances that lost the backend together do not probe it together.
    const delay = base / 2 + Math.random() * (base / 2);
    this.#nextProbeAt = Date.now() + delay;
    this.#timer = setTimeout(() => this.#runProbe(), delay);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #runProbe(): void {
    let probing: Promise<unknown>;
    try {
      probing = this.#probe();
    } catch (error) {
      probing = Promise.reject(error);
    }
    probing.then(
      () => {
        if (this.#closed || !this.#open) return;
        this.#open = false;
        const seconds = ((Date.now() - this.#openedAt) / 1000).toFixed(1);
        (this.#logger.info ?? this.#logger.warn)(
          `[keygate] ${this.#name} answers again after ${seconds} s (${this.#refused} calls answered without it meanwhile)`,
        );
        this.#onClose?.();
      },
      (error: unknown) => {
        this.#cause = error;
        this.#failedProbes++;
        this.#schedule();
      },
    );
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return error.message || (typeof code === 'string' ? code : error.name);
}
