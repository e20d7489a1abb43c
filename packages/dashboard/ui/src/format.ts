import type { ApiKey } from './types.ts';

export type Status = 'active' | 'expiring' | 'expired' | 'revoked';

const EXPIRING_WITHIN_MS = 7 * 86_400_000;

export function statusOf(key: ApiKey, now = Date.now()): Status {
  if (key.revokedAt) return 'revoked';
  if (key.expiresAt) {
    const expires = Date.parse(key.expiresAt);
    if (expires <= now) return 'expired';
    if (expires - now <= EXPIRING_WITHIN_MS) return 'expiring';
  }
  return 'active';
}

export const STATUS_LABELS: Record<Status, string> = {
  active: 'Active',
  expiring: 'Expiring soon',
  expired: 'Expired',
  revoked: 'Revoked',
};

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short',
});
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatDate(iso: string | null, fallback = '—'): string {
  return iso ? dateFormat.format(new Date(iso)) : fallback;
}

export function formatDateTime(iso: string | null, fallback = '—'): string {
  return iso ? dateTimeFormat.format(new Date(iso)) : fallback;
}

/** "3 minutes ago", "in 2 days". */
export function formatRelative(iso: string | null, fallback = 'Never', now = Date.now()): string {
  if (!iso) return fallback;
  const seconds = (Date.parse(iso) - now) / 1000;
  const units: Array<[Intl.RelativeTimeFormatUnit, number]> = [
    ['year', 31_536_000],
    ['month', 2_592_000],
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relativeFormat.format(Math.round(seconds / size), unit);
  }
  return Math.abs(seconds) < 45 ? 'just now' : relativeFormat.format(Math.round(seconds), 'second');
}

export function formatNumber(value: number): string {
  return value.toLocaleString();
}

/** Lines or commas of a textarea as a list, blanks dropped. */
export function splitList(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}
