import { describe, expect, it } from 'vitest';
import { withTurn } from './turn.js';

describe('withTurn', () => {
  it('releases the answers decided in one turn together, when the turn ends, in order', async () => {
    const order: string[] = [];
    const a = withTurn('a').then((value) => order.push(value));
    // Registered between the two: one release for the whole turn runs before it.
    setImmediate(() => order.push('immediate registered after a'));
    const b = withTurn('b').then((value) => order.push(value));
    void Promise.resolve().then(() => order.push('microtask'));
    await Promise.all([a, b]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['microtask', 'a', 'b', 'immediate registered after a']);
  });

  it('starts a new batch in the next turn', async () => {
    expect(await withTurn(1)).toBe(1);
    const order: string[] = [];
    setImmediate(() => order.push('immediate'));
    await withTurn('second turn').then((value) => order.push(value));
    expect(order).toEqual(['immediate', 'second turn']);
  });

  it('leaves an answer that had to wait as it is: released when it comes, failures included', async () => {
    const order: string[] = [];
    setImmediate(() => order.push('immediate'));
    await withTurn(Promise.resolve('waited')).then((value) => order.push(value));
    expect(order).toEqual(['waited']);
    await expect(withTurn(Promise.reject(new Error('store down')))).rejects.toThrow('store down');
  });
});
