import { isPending } from './timeout.js';

/**
 * Answers decided at once are released together, when the event loop's turn ends (after the
 * poll phase has read every request that arrived), instead of each as soon as it is decided. A
 * server under load then reads a turn's requests before it writes their responses, rather than
 * alternating between the two, which on the bench machine cost more than keygate's own steps:
 * leased keygate on Hono answered this way took 35 µs of CPU per request instead of 72 (see
 * BENCHMARKS.md). An answer that had to wait for a backend is released when it comes, as before.
 * Written here rather than taken from a library: it is one queue and one `setImmediate`.
 */
let waiting: Array<() => void> = [];

// Runtimes without `setImmediate` (workers, Deno) release at the end of the microtask queue, rather
// than a timer later: a timer can be clamped to a millisecond or more.
const schedule: (release: () => void) => void =
  typeof setImmediate === 'function' ? setImmediate : queueMicrotask;

function release(): void {
  const released = waiting;
  waiting = [];
  for (const resolve of released) resolve();
}

/** `value` when the turn ends, or the promise itself when it is still pending. */
export function withTurn<T>(value: T | PromiseLike<T>): Promise<T> {
  if (isPending(value)) return Promise.resolve(value);
  return new Promise<T>((resolve) => {
    if (waiting.length === 0) schedule(release);
    waiting.push(() => resolve(value));
  });
}
