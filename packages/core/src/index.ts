export * from './adapter-kit.js';
export {
  AuditLog,
  type AuditLogOptions,
  type AuditQueueFullPolicy,
  type AuditRecord,
  type AuditRecordOptions,
  type AuditSubject,
  JsonLinesAuditSink,
  MemoryAuditSink,
} from './audit.js';
export { VerificationCache, type VerificationCacheOptions } from './cache.js';
export { BackendUnavailableError, type CircuitRetry } from './circuit.js';
export { clientIpOf, proxyTrust, type TrustProxy } from './client-ip.js';
export {
  boundsOf,
  type DelegationBounds,
  delegationRefusal,
  type KeyReach,
} from './delegation.js';
export * from './errors.js';
export { ALL_SOURCES, type KeySource, pathOf } from './extract.js';
export * from './guard.js';
export {
  brandPrefixes,
  crc32,
  createKeyFormat,
  createKeyHasher,
  DEFAULT_PREFIXES,
  type KeyFormat,
  type KeyHasher,
  type KeyPrefixes,
  type ParsedKey,
} from './key-format.js';
export * from './key-input.js';
export { type FoundKey, findKeys, KeyFinder, type ScanStats } from './key-scan.js';
export { createKeygate, type Keygate } from './keygate.js';
export { type Actor, type IssuedKey, KeyService, keyDetails } from './keys.js';
export {
  MAX_LEAK_REPORT_BODY,
  MAX_LEAK_REPORT_ENTRIES,
} from './leak-report.js';
export {
  fetchGitHubSigningKeys,
  type GitHubSigningKey,
  type IdentifiedKey,
  type KeyStatus,
  type LeakOptions,
  type LeakOutcome,
  type LeakPolicy,
  type LeakReport,
  LeakService,
  verifyGitHubSignature,
} from './leaks.js';
export {
  type AuthFailureLimit,
  LocalInvalidationBus,
  MemoryAuthFailureGuard,
  type MemoryAuthFailureGuardOptions,
} from './local-backends.js';
export * from './management.js';
export { MemorySessionStore } from './memory-session-store.js';
export { MemoryKeyStore } from './memory-store.js';
export {
  type KeygateConfig,
  type KeygateOptions,
  type PageSessionConfig,
  type PageSessionOptions,
  resolveOptions,
} from './options.js';
export { OutageLog } from './outage-log.js';
export type {
  PageSessions,
  SessionState,
  SignedIn,
  SignInInput,
} from './page-session.js';
export * from './rate-limit.js';
export { readiness } from './readiness.js';
export { checkRestrictions, normaliseIp, validateRestrictions } from './restrictions.js';
export { SECURE_SESSION_COOKIE, SESSION_COOKIE } from './session-cookie.js';
export { isPending, TimeoutError, withTimeout } from './timeout.js';
export { withTurn } from './turn.js';
export type * from './types.js';
export type { UsageSubject } from './usage.js';
export {
  INTERVAL_MS,
  type KeyUsage,
  MAX_USAGE_BUCKETS,
  type UsageInterval,
  type UsageOptions,
  type UsageRange,
} from './usage-window.js';
export * from './webhooks.js';
