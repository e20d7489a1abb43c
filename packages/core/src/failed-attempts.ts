import type { AuditLog, AuditSubject } from './audit.js';
import { failureSubject } from './auth-failures.js';
import { type Failure, failure, KeygateError } from './errors.js';
import type { OutageLog } from './outage-log.js';
import type { AuditContext, AuthFailureGuard } from './types.js';

const MAX_BLOCKED_CLIENTS = 100_000;

/**
 * Failed authentications: each is audited, and counted per client IP by the brute-force guard,
 * past whose limit the client gets 429 instead. Only failures are refused so: a key that verifies
 * is served whoever sends it.
 */
export class FailedAttempts {
  readonly #guard: AuthFailureGuard | null;
  readonly #audit: AuditLog;
  readonly #outage: OutageLog;
  /** Clients the guard has blocked, until when: their further failures cost no guard call. */
  readonly #blockedUntil = new Map<string, number>();

  constructor(guard: AuthFailureGuard | null, audit: AuditLog, outage: OutageLog) {
    this.#guard = guard;
    this.#audit = audit;
    this.#outage = outage;
  }

  /** Records a failure that is not the client's to repeat (a restriction, a limit, an outage): audited, not counted. */
  refuse(
    ctx: AuditContext,
    error: KeygateError,
    subject: AuditSubject | null,
    headers?: Failure['headers'],
  ): Failure {
    this.#audit.recordFailure('auth.failed', error.reason, subject, ctx);
    return failure(error, headers);
  }

  /** Records a failed attempt (no key, a bad or unknown one): audited and counted against the client. */
  async fail(
    ctx: AuditContext,
    error: KeygateError,
    subject: AuditSubject | null,
  ): Promise<Failure> {
    this.#audit.recordFailure('auth.failed', error.reason, subject, ctx);
    const client = failureSubject(ctx.ip);
    if (!this.#guard || client === null) return failure(error);
    const until = this.#blockedUntil.get(client);
    if (until !== undefined) {
      if (until > Date.now()) return blocked((until - Date.now()) / 1000);
      this.#blockedUntil.delete(client);
    }
    let blockedFor = 0;
    try {
      blockedFor = await this.#guard.recordFailure(client);
    } catch (guardError) {
      this.#outage.warn('failed-authentication guard unavailable', guardError);
    }
    if (blockedFor <= 0) return failure(error);
    if (this.#blockedUntil.size >= MAX_BLOCKED_CLIENTS) this.#blockedUntil.clear();
    this.#blockedUntil.set(client, Date.now() + blockedFor * 1000);
    return blocked(blockedFor);
  }
}

function blocked(seconds: number): Failure {
  const error = new KeygateError('RATE_LIMITED', {
    message: 'Too many failed authentication attempts',
    reason: 'auth_failures',
  });
  return failure(error, { 'Retry-After': String(Math.max(1, Math.ceil(seconds))) });
}
