import { checkKey } from './check-key.js';
import { BackendUnavailableError, isOutage } from './circuit.js';
import { type Failure, KeygateError } from './errors.js';
import { extractKey, pathOf } from './extract.js';
import type { ParsedKey } from './key-format.js';
import { type Limited, limitRequest } from './limit.js';
import type { KeyMatch, KnownKey } from './look-up.js';
import type { Pipeline } from './pipeline.js';
import { requestContext } from './request-context.js';
import { authenticateSession } from './session.js';
import { isPending } from './timeout.js';
import type { AuditContext, Decision, KeygateRequest } from './types.js';

/**
 * A request, step by step: extract the credential → parse it → look the key up → check it
 * against the request → limit → record the use. Each step gives the next one its value or ends
 * with a failure; without a credential, the session resolver is asked instead. The decision comes
 * at once when no step had to wait (a cached key, a limiter answering from memory), else as a
 * promise: a request served from memory allocates none.
 */
export function authenticate(
  pipeline: Pipeline,
  req: KeygateRequest,
): Decision | Promise<Decision> {
  const { config, attempts } = pipeline;
  const path = pathOf(req.url);
  const context = requestContext(req, path, config.format);

  const credential = extractKey(req, config.extract);
  if (credential.kind === 'none') return authenticateSession(pipeline, req, context, path);
  if (credential.kind === 'error') return attempts.fail(context, credential.error, null);

  const parsed = config.format.parse(credential.key);
  if (!parsed) return attempts.fail(context, invalidKey('malformed'), null);

  let found: KeyMatch | Promise<KeyMatch>;
  try {
    found = pipeline.lookUp(parsed.secret);
  } catch (error) {
    return storeUnavailable(pipeline, context, error);
  }
  if (!isPending(found)) return checkAndLimit(pipeline, req, path, context, parsed, found);
  return found.then(
    (match) => checkAndLimit(pipeline, req, path, context, parsed, match),
    (error: unknown) => storeUnavailable(pipeline, context, error),
  );
}

/** 503 with `Retry-After`: when the store's circuit will next try it, or 1 s. */
function storeUnavailable(pipeline: Pipeline, context: AuditContext, error: unknown): Failure {
  // An outage was logged once by the store's circuit breaker when it opened.
  if (!isOutage(error)) pipeline.outage.warn('key store unavailable', error);
  const retryAfter = error instanceof BackendUnavailableError ? error.retryAfterSeconds : 1;
  const unavailable = new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' });
  return pipeline.attempts.refuse(context, unavailable, null, {
    'Retry-After': String(retryAfter),
  });
}

/** The steps after the look-up: check the key against the request, limit, record the use. */
function checkAndLimit(
  pipeline: Pipeline,
  req: KeygateRequest,
  path: string,
  context: AuditContext,
  parsed: ParsedKey,
  match: KeyMatch,
): Decision | Promise<Decision> {
  const { config, attempts } = pipeline;
  const { known } = match;
  const refusal = checkKey(match, parsed, req, path, config.environments, Date.now());
  if (refusal !== null || known === null) {
    if (refusal?.code === 'FORBIDDEN') return attempts.refuse(context, refusal, known!.record);
    const shown = {
      id: known?.id ?? null,
      start: parsed.start,
      ownerId: known?.record.ownerId ?? null,
    };
    return attempts.fail(context, refusal ?? invalidKey('unknown'), shown);
  }

  const limited = limitRequest(
    config.limiter,
    known.id,
    known.policies,
    known.policyHeader,
    pipeline.outage,
  );
  if (!isPending(limited)) return admit(pipeline, known, context, limited);
  return limited.then((answer) => admit(pipeline, known, context, answer));
}

/** The last step: the limit's answer, and the use recorded when it lets the request through. */
function admit(
  pipeline: Pipeline,
  known: KnownKey,
  context: AuditContext,
  limited: Limited,
): Decision {
  if (limited.error) {
    return pipeline.attempts.refuse(context, limited.error, known.record, limited.headers);
  }
  pipeline.audit.recordUse('auth.succeeded', known.record, context);
  return {
    ok: true,
    principal: known.principal,
    headers: limited.headers,
    context,
    keygate: pipeline.keygate,
  };
}

function invalidKey(reason: string): KeygateError {
  return new KeygateError('INVALID_API_KEY', { reason });
}
