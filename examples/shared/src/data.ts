import { createHash } from 'node:crypto';
import type { KeyEnvironment, Principal } from '@keygate/core';

const DEMO_WEBSITES = ['w_1', 'w_2', 'w_3'];

/**
 * Deterministic numbers from an id, so the synthetic API answers the same way every time. Test
 * keys see test data: an app keeps the two apart by the key's `environment`, as here.
 */
function figures(id: string, environment: KeyEnvironment): number[] {
  const source = environment === 'live' ? id : `${environment}:${id}`;
  const digest = createHash('sha256').update(source).digest();
  return [0, 4, 8, 12].map((offset) => digest.readUInt32BE(offset));
}

/** The websites a principal may see: all demo sites for a global key, else its `website:` resources. */
export function visibleWebsites(principal: Principal): Array<{ id: string; name: string }> {
  const ids =
    principal.resources === null || principal.resources.includes('website:*')
      ? DEMO_WEBSITES
      : principal.resources.filter((r) => r.startsWith('website:')).map((r) => r.slice(8));
  return ids.map((id) => ({ id, name: `Website ${id}` }));
}

export function websiteAnalytics(websiteId: string, environment: KeyEnvironment) {
  const [a = 0, b = 0, c = 0, d = 0] = figures(`website:${websiteId}`, environment);
  return {
    websiteId,
    environment,
    pageviews: a % 100_000,
    visitors: b % 20_000,
    bounceRate: (c % 1000) / 1000,
    avgSessionSeconds: d % 600,
  };
}

export function linkAnalytics(linkId: string, environment: KeyEnvironment) {
  const [a = 0, b = 0] = figures(`link:${linkId}`, environment);
  return { linkId, environment, clicks: a % 50_000, uniqueClicks: b % 25_000 };
}
