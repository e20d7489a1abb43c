import type { AuditLog } from './audit.js';
import { type Failure, failure } from './errors.js';
import { checkRequirement } from './guard.js';
import type { KeyFormat } from './key-format.js';
import type { Authentication, ScopeRequirement } from './types.js';

export interface AuthorizeDeps {
  audit: AuditLog;
  format: KeyFormat;
  /** Whether guard decisions are audited (`auditScopeChecks`). */
  auditScopeChecks: boolean;
}

/**
 * The guard step: whether an authenticated request meets a route's requirement, `null` when it
 * does, the failure otherwise. `resource` is `undefined` when the route names none and `null`
 * when it names one the request does not carry. A failed check is audited as an event, a passed
 * one counted as the request's usage.
 */
export function authorize(
  deps: AuthorizeDeps,
  auth: Authentication,
  requirement: ScopeRequirement,
  resource?: string | null,
): Failure | null {
  const { principal, context } = auth;
  const error = checkRequirement(principal, requirement, resource);
  if (deps.auditScopeChecks) {
    const action = resource === undefined ? 'scope.checked' : 'resource.checked';
    const subject =
      principal.kind === 'key'
        ? principal.key
        : { id: principal.id, start: null, ownerId: principal.ownerId };
    if (error) {
      const detail = checkDetail(deps.format, auth, requirement, resource);
      deps.audit.recordFailure(action, error.reason, subject, context, detail);
    } else {
      // A pass is counted; its detail is only built for a sink that records every use.
      const detail = deps.audit.keepsEveryUse
        ? checkDetail(deps.format, auth, requirement, resource)
        : null;
      deps.audit.recordUse(action, subject, context, detail);
    }
  }
  // An authenticated request's answers all carry its rate-limit headers, refusals too.
  return error ? failure(error, auth.headers) : null;
}

/** What a check's audit record says: the scopes required and granted, and the resource asked for. */
function checkDetail(
  format: KeyFormat,
  { principal }: Authentication,
  requirement: ScopeRequirement,
  resource: string | null | undefined,
): Record<string, unknown> {
  return {
    required: requirement.scopes,
    mode: requirement.mode,
    granted: principal.scopes,
    // The resource comes from the path: a key pasted there is cut here too.
    ...(resource !== undefined
      ? { resource: resource === null ? null : format.redact(resource) }
      : {}),
  };
}
