import { AuditLog } from './audit.js';
import { authenticate } from './authenticate.js';
import { authorize } from './authorize.js';
import { FailedAttempts } from './failed-attempts.js';
import { KeyService } from './keys.js';
import { createDigestLookup, createKeyLookup } from './look-up.js';
import { type KeygateConfig, type KeygateOptions, resolveOptions } from './options.js';
import { OutageLog } from './outage-log.js';
import { type PageSessions, pageSessions } from './page-session.js';
import type { Pipeline } from './pipeline.js';
import { policiesFor } from './rate-limit.js';
import type { AuditReader, Authorizer, Decision, KeyEnvironment, KeygateRequest } from './types.js';

export type { KeygateOptions } from './options.js';

export interface Keygate extends Authorizer {
  /** Identifies the caller: a key (or session) with its rate limit applied, or the failure to answer. */
  authenticate(req: KeygateRequest): Promise<Decision>;
  /**
   * `authenticate`, answered at once when no step had to wait (a cached key, a limiter answering
   * from memory), else as a promise. The adapters call it and release what it answers at once
   * with the rest of the event loop's turn (`withTurn`).
   */
  decide(req: KeygateRequest): Decision | Promise<Decision>;
  readonly keys: KeyService;
  readonly audit: AuditLog;
  readonly auditReader: AuditReader | null;
  readonly adminScope: string;
  /** Scopes a public key may hold. */
  readonly publicScopes: readonly string[];
  /** Environments this app accepts keys from. */
  readonly environments: readonly KeyEnvironment[];
  /** Whether browser sessions can authenticate (page sessions are on, or a session resolver is configured). */
  readonly acceptsSessions: boolean;
  /** The key-management page's sessions: sign in with a key, sign out, whether a request has one. */
  readonly sessions: PageSessions;
  /** Origins, besides a request's own, from which a session may change keys (normalised). */
  readonly trustedOrigins: ReadonlySet<string>;
  readonly logger: Pick<Console, 'warn' | 'error'>;
  /** Flushes the audit trail and closes every backend. */
  close(): Promise<void>;
}

/** keygate from its options (see `KeygateOptions`); a misconfiguration throws here, never per request. */
export function createKeygate(options: KeygateOptions = {}): Keygate {
  const config = resolveOptions(options);
  const { logger, store, cache, invalidation, limiter, failureGuard, auditReader } = config;
  const audit = new AuditLog({ sinks: config.sinks, logger, ...config.auditQueue });
  const outage = new OutageLog(logger);
  const guarding = { audit, format: config.format, auditScopeChecks: config.auditScopeChecks };
  const keygate: Keygate = {
    authenticate: (req) => Promise.resolve(authenticate(pipeline, req)),
    decide: (req) => authenticate(pipeline, req),
    authorize: (auth, requirement, resource) => authorize(guarding, auth, requirement, resource),
    keys: new KeyService({ ...config, audit }),
    audit,
    auditReader,
    adminScope: config.adminScope,
    publicScopes: config.publicScopes,
    environments: config.environments,
    acceptsSessions: config.session !== null || config.pageSessions !== null,
    get sessions() {
      return sessions;
    },
    trustedOrigins: config.trustedOrigins,
    logger,
    async close() {
      await audit.close();
      await Promise.all([
        limiter?.close?.(),
        failureGuard?.close?.(),
        invalidation.close?.(),
        store.close?.(),
      ]);
    },
  };
  const lookUpDeps = { store, cache, hasher: config.hasher, tiers: config.tiers };
  const pipeline: Pipeline = {
    config,
    audit,
    outage,
    attempts: new FailedAttempts(failureGuard, audit, outage),
    lookUp: createKeyLookup(lookUpDeps),
    findByDigest: createDigestLookup(lookUpDeps),
    sessionPolicies: policiesFor(config.tiers.secret, null),
    keygate,
  };
  const sessions = pageSessions(pipeline);
  followInvalidations(config);
  return keygate;
}

/**
 * When a key changes here or on another instance: drops its cached verifications, and whatever the
 * limiter holds for it (leased tokens); when the bus was interrupted, all of them.
 */
function followInvalidations({ cache, limiter, invalidation, logger }: KeygateConfig): void {
  if (!cache && !limiter?.invalidate && !limiter?.reset) return;
  invalidation
    .subscribe(
      (keyId) => {
        cache?.invalidateKey(keyId);
        limiter?.invalidate?.(keyId);
      },
      () => {
        cache?.clear();
        limiter?.reset?.();
      },
    )
    .catch((error: unknown) =>
      logger.warn('[keygate] cache invalidation subscription failed:', error),
    );
}
