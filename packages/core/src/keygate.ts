import { AuditLog } from './audit.js';
import { authenticate } from './authenticate.js';
import { authorize } from './authorize.js';
import { Circuit } from './circuit.js';
import { FailedAttempts } from './failed-attempts.js';
import { guardStore, PROBE_DIGEST } from './guarded-store.js';
import { KeyService } from './keys.js';
import { LeakService } from './leaks.js';
import { createDigestLookup, createKeyLookup } from './look-up.js';
import { type KeygateConfig, type KeygateOptions, resolveOptions } from './options.js';
import { OutageLog } from './outage-log.js';
import { type PageSessions, pageSessions } from './page-session.js';
import type { Pipeline } from './pipeline.js';
import { policiesFor } from './rate-limit.js';
import { withTimeout } from './timeout.js';
import type { AuditReader, Authorizer, Decision, KeyEnvironment, KeygateRequest } from './types.js';
import type { WebhookRegistry } from './webhooks.js';

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
  /** Leaked keys: what a secret is, and reports that one leaked (see `LeakOptions`). */
  readonly leaks: LeakService;
  /** Owners' webhook endpoints and deliveries (`webhooks` option), or `null`. */
  readonly webhooks: WebhookRegistry | null;
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
  /** Whether the key store is known to be down (its circuit is open): requests are answered without it. */
  readonly storeAvailable: boolean;
  /** Whether `drain()` was called: the instance is shutting down, and `readiness()` answers 503. */
  readonly draining: boolean;
  /** Marks the instance as shutting down (readiness 503); requests are still served. */
  drain(): void;
  /**
   * Drains, flushes the audit trail, usage and leases, and closes every backend, within
   * `deadlineMs` (default `auditQueue.closeTimeoutMs`, 10 s): whatever the backends do, it
   * resolves by then, having logged what it could not flush.
   */
  close(options?: { deadlineMs?: number }): Promise<void>;
}

/** keygate from its options (see `KeygateOptions`); a misconfiguration throws here, never per request. */
export function createKeygate(options: KeygateOptions = {}): Keygate {
  const config = resolveOptions(options);
  const { logger, cache, invalidation, limiter, failureGuard, auditReader } = config;
  const audit = new AuditLog({
    sinks: config.sinks,
    logger,
    circuitBreaker: config.circuitBreaker,
    ...config.auditQueue,
  });
  const outage = new OutageLog(logger);
  const storeCircuit = new Circuit({
    name: 'key store',
    whileDown: cache
      ? `serving cached keys for up to ${Math.round(cache.staleIfErrorMs / 1000)} s past their TTL and answering 503 to the others`
      : 'answering 503 to requests with a key',
    probe: () => config.store.findByDigest(PROBE_DIGEST),
    logger,
    ...config.circuitBreaker,
  });
  const store = guardStore(config.store, storeCircuit);
  const closeDeadline = config.auditQueue.closeTimeoutMs ?? 10_000;
  let draining = false;
  let closing: Promise<void> | undefined;
  const guarding = { audit, format: config.format, auditScopeChecks: config.auditScopeChecks };
  const keys = new KeyService({ ...config, store, audit });
  const keygate: Keygate = {
    authenticate: (req) => Promise.resolve(authenticate(pipeline, req)),
    decide: (req) => authenticate(pipeline, req),
    authorize: (auth, requirement, resource) => authorize(guarding, auth, requirement, resource),
    keys,
    leaks: new LeakService({
      store,
      format: config.format,
      hasher: config.hasher,
      audit,
      storeSink: keys.storeSink,
      auditReader,
      policy: config.leaks,
      invalidate: (id) => keys.invalidate(id),
    }),
    webhooks: config.webhooks,
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
    get storeAvailable() {
      return !storeCircuit.isOpen;
    },
    get draining() {
      return draining;
    },
    drain() {
      draining = true;
    },
    close({ deadlineMs = closeDeadline } = {}) {
      draining = true;
      closing ??= closeWithin(deadlineMs, logger, [
        // The audit trail and usage, and the limiter's leases, are flushed together.
        (ms) => audit.close(ms),
        () => limiter?.close?.(),
        () => failureGuard?.close?.(),
        () => invalidation.close?.(),
        () => config.webhooks?.close?.(),
      ]).then(async (left) => {
        storeCircuit.close();
        await closeWithin(left, logger, [() => config.store.close?.()]);
      });
      return closing;
    },
  };
  const lookUpDeps = {
    store,
    cache,
    hasher: config.hasher,
    tiers: config.tiers,
    circuit: storeCircuit,
  };
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
 * Runs each step at once and resolves when all have settled or `deadlineMs` has passed, whichever
 * is first, with the time left; a step that failed or was cut short is logged.
 */
async function closeWithin(
  deadlineMs: number,
  logger: Pick<Console, 'error'>,
  steps: ReadonlyArray<(ms: number) => Promise<unknown> | undefined>,
): Promise<number> {
  const started = Date.now();
  const finished = await withinDeadline(
    Promise.all(
      steps.map((step) =>
        Promise.resolve()
          .then(() => step(deadlineMs))
          .catch((error: unknown) => logger.error('[keygate] closing failed:', error)),
      ),
    ),
    deadlineMs,
  );
  if (!finished) {
    logger.error(
      `[keygate] closing did not finish within ${Math.round(deadlineMs)} ms; left unfinished`,
    );
  }
  return Math.max(0, deadlineMs - (Date.now() - started));
}

/**
 * When a key changes here or on another instance: drops its cached verifications, and whatever the
 * limiter holds for it (leased tokens); when the bus was interrupted, all of them. While it is
 * interrupted, changes made elsewhere go unheard: cached keys are trusted for `busDownTtlMs` only.
 */
function followInvalidations({ cache, limiter, invalidation, logger }: KeygateConfig): void {
  if (!cache && !limiter?.invalidate && !limiter?.reset) return;
  let lost = false;
  invalidation
    .subscribe(
      (keyId) => {
        cache?.invalidateKey(keyId);
        limiter?.invalidate?.(keyId);
      },
      () => {
        lost = false;
        cache?.setInvalidationsHeard(true);
        cache?.clear();
        limiter?.reset?.();
      },
      (cause) => {
        if (lost) return;
        lost = true;
        cache?.setInvalidationsHeard(false);
        logger.warn(
          `[keygate] cache invalidation bus down (${cause}): changes made on other instances go unheard until it is back${cache ? `, so cached keys are checked with the key store again after ${cache.busDownTtlMs} ms` : ''}`,
        );
      },
    )
    .catch((error: unknown) =>
      logger.warn('[keygate] cache invalidation subscription failed:', error),
    );
}

/** Whether `work` settled within `ms`. */
function withinDeadline(work: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(work, ms).then(
    () => true,
    () => false,
  );
}
