import { createKeygate, KeyManagementError } from '@keygate/core';
import { describe, expect, it, vi } from 'vitest';
import { adapters } from './harness.js';
import { describeConformance } from './table.js';

// Every GET route's handler reads the synthetic data layer once, so counting those reads counts
// handler runs without touching the apps.
vi.mock(import('../../examples/shared/src/data.js'), async (importOriginal) => {
  const original = await importOriginal();
  return {
    ...original,
    visibleWebsites: vi.fn(original.visibleWebsites),
    websiteAnalytics: vi.fn(original.websiteAnalytics),
    linkAnalytics: vi.fn(original.linkAnalytics),
  };
});

describeConformance(adapters.map((adapter) => ({ label: adapter.name, adapter })));

describe('issuing keys', () => {
  it('refuses a public key with a secret-only scope', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    try {
      const refused = keygate.keys.create({
        name: 'browser',
        type: 'public',
        scopes: ['write:llm'],
      });
      await expect(refused).rejects.toBeInstanceOf(KeyManagementError);
      await expect(refused).rejects.toMatchObject({
        code: 'INVALID_REQUEST',
        message: 'scopes: a public key cannot hold write:llm (allowed: track:events, read:config)',
      });
      expect(await keygate.keys.list()).toEqual([]);
    } finally {
      await keygate.close();
    }
  });
});
