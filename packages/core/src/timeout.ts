/** Whether a step's answer is still to come: steps answer at once when nothing had to wait. */
export const isPending = <T>(value: T | PromiseLike<T>): value is PromiseLike<T> =>
  typeof (value as PromiseLike<T> | null)?.then === 'function';

/** Raised by {@link withTimeout} when a call takes longer than its caller may wait. */
export class TimeoutError extends Error {
  readonly code = 'TIMEOUT';
  /** `backend` names who did not answer, for the message (`Redis did not answer within 500 ms`). */
  constructor(ms: number, backend?: string) {
    super(backend ? `${backend} did not answer within ${ms} ms` : `no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * `promise`, or a rejection with `onTimeout()` (a `TimeoutError` by default) after `ms`,
 * whichever comes first; a rejection of `promise` after the deadline is not left unhandled. The
 * deadline covers what a backend's own timeouts cannot: a connection that stopped answering.
 */
export function withTimeout<T>(
  promise: PromiseLike<T>,
  ms: number,
  onTimeout: () => Error = () => new TimeoutError(ms),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // After a busy stretch timers run before sockets are read: a reply that is already there
    // gets one more turn, so a busy event loop is not taken for a stalled backend.
    const timer = setTimeout(() => setImmediate(() => reject(onTimeout())), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
