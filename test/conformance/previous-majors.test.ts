/**
 * The conformance table on the previous major of each Node framework keygate supports (SPEC §9):
 * Express 4 and Koa 2, installed under the npm aliases `express4` and `koa2`, stand in for
 * `express` and `koa` wherever the reference apps import them.
 */
import { describe, expect, it, vi } from 'vitest';
import { adapters } from './harness.js';
import { describeConformance } from './table.js';

vi.mock(import('../../examples/shared/src/data.js'), async (importOriginal) => {
  const original = await importOriginal();
  return {
    ...original,
    visibleWebsites: vi.fn(original.visibleWebsites),
    websiteAnalytics: vi.fn(original.websiteAnalytics),
    linkAnalytics: vi.fn(original.linkAnalytics),
  };
});
vi.mock('express', () => import('express4'));
vi.mock('koa', () => import('koa2'));

describe('previous majors', () => {
  it('the reference apps are built on Express 4 and Koa 2', async () => {
    const [express, koa] = await Promise.all([import('express'), import('koa')]);
    const [express4, koa2] = await Promise.all([import('express4'), import('koa2')]);
    expect(express.default).toBe(express4.default);
    expect(koa.default).toBe(koa2.default);
    const current = await Promise.all([vi.importActual('express'), vi.importActual('koa')]);
    expect(express4.default).not.toBe((current[0] as typeof express).default);
    expect(koa2.default).not.toBe((current[1] as typeof koa).default);
  });
});

describeConformance(
  (['express', 'koa'] as const).map((name) => ({
    label: name === 'express' ? 'express 4' : 'koa 2',
    adapter: adapters.find((adapter) => adapter.name === name)!,
  })),
);
