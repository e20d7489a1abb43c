import type { AuditLog } from './audit.js';
import type { ApiKey, AuditReader, KeyDetails } from './types.js';

/**
 * When each key was last used, to the minute, without a write per use: the latest `lastSeen` of
 * its usage rows as the audit reader has them, or of the uses this instance counted and has not
 * written yet, whichever is later. Verifying a key thus writes nothing but usage rows, which the
 * audit trail keeps anyway (a key's `last_used_at` column cost an UPDATE per key and minute).
 * Without a reader that keeps usage, only this instance's waiting uses are known.
 */
export async function withLastUse(
  keys: readonly KeyDetails[],
  reader: AuditReader | null,
  audit: AuditLog,
): Promise<ApiKey[]> {
  if (keys.length === 0) return [];
  const ids = keys.map((key) => key.id);
  const written = (await reader?.lastUsed?.(ids)) ?? new Map<string, Date>();
  const waiting = audit.pendingLastUse(ids);
  return keys.map((key) => ({
    ...key,
    lastUsedAt: latest(written.get(key.id), waiting.get(key.id)),
  }));
}

function latest(a: Date | undefined, b: Date | undefined): Date | null {
  if (a === undefined || b === undefined) return a ?? b ?? null;
  return a > b ? a : b;
}
