import type { AuditLog } from './audit.js';
import type { FailedAttempts } from './failed-attempts.js';
import type { KeyMatch, KnownKey } from './look-up.js';
import type { KeygateConfig } from './options.js';
import type { OutageLog } from './outage-log.js';
import type { Authorizer, RateLimitPolicy } from './types.js';

/** What the authentication steps share: the configuration and the instance's backends. */
export interface Pipeline {
  config: KeygateConfig;
  audit: AuditLog;
  outage: OutageLog;
  attempts: FailedAttempts;
  lookUp: (secret: string) => KeyMatch | Promise<KeyMatch>;
  /** The key with this digest, through the verification cache: how a page session finds its key's current record. */
  findByDigest: (digest: string) => Promise<KnownKey | null>;
  /** The limits of a session: the secret tier's. */
  sessionPolicies: readonly RateLimitPolicy[];
  keygate: Authorizer;
}
