import { KeygateError } from './errors.js';
import type { ParsedKey } from './key-format.js';
import type { KeyMatch, KnownKey } from './look-up.js';
import { quarantineViolation } from './quarantine.js';
import { restrictionViolation } from './restrictions.js';
import type { KeyEnvironment, KeygateRequest } from './types.js';

/**
 * The check step: why the key found for a secret cannot serve this request, or `null` when it
 * can. `INVALID_API_KEY` (one message whatever the reason, which only the audit trail gets) for
 * an unknown, rotated-out, revoked or expired key or one of an environment the app does not
 * accept; `FORBIDDEN` for a request its restrictions do not allow (IP, origin, endpoint, against
 * the whole `path`), or from an address a leak's quarantine does not keep.
 */
export function checkKey(
  match: KeyMatch,
  parsed: ParsedKey,
  req: KeygateRequest,
  path: string,
  environments: readonly KeyEnvironment[],
  nowMs: number,
): KeygateError | null {
  const reason = invalidReason(match, parsed, nowMs, environments);
  if (reason !== null) return new KeygateError('INVALID_API_KEY', { reason });
  const known = match.known as KnownKey;
  return (
    restrictionViolation(known.restrictions, req, path) ??
    quarantineViolation(known.quarantine, req.ip)
  );
}

/** Why the key found for a secret is invalid (`unknown`, `rotated`, `revoked`, `expired`, `wrong_environment`), or `null`. */
export function invalidReason(
  { known, digest }: KeyMatch,
  parsed: ParsedKey,
  nowMs: number,
  environments: readonly KeyEnvironment[],
): string | null {
  const record = known?.record;
  if (!record || record.type !== parsed.type || record.environment !== parsed.environment) {
    return 'unknown';
  }
  if (record.digest !== digest && (record.previousDigestExpiresAt?.getTime() ?? 0) <= nowMs) {
    return 'rotated';
  }
  if (record.revokedAt) return 'revoked';
  if (record.expiresAt && record.expiresAt.getTime() <= nowMs) return 'expired';
  if (!environments.includes(record.environment)) return 'wrong_environment';
  return null;
}
