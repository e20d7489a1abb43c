import { KeygateError } from './errors.js';
import { limitRequest } from './limit.js';
import { authenticatePageSession } from './page-session.js';
import type { Pipeline } from './pipeline.js';
import type { AuditContext, Decision, KeygateRequest } from './types.js';

const VIA_SESSION = { via: 'session' };

/**
 * A request that carries no key: its page session (signed in with a key, acting as that key), or
 * else the session the app's resolver finds for it (a browser signed in to the app), limited as
 * a secret key is, or `AUTH_REQUIRED` when there is none.
 */
export async function authenticateSession(
  pipeline: Pipeline,
  req: KeygateRequest,
  context: AuditContext,
  path: string,
): Promise<Decision> {
  const pageSession = await authenticatePageSession(pipeline, req, context, path);
  if (pageSession) return pageSession;
  const { config, attempts } = pipeline;
  const session = config.session ? await config.session(req) : null;
  if (!session) {
    return attempts.refuse(context, new KeygateError('AUTH_REQUIRED', { reason: 'missing' }), null);
  }
  const subject = { id: session.id, start: null, ownerId: session.ownerId };
  const limited = await limitRequest(
    config.limiter,
    `session:${session.id}`,
    pipeline.sessionPolicies,
    undefined,
    pipeline.outage,
  );
  if (limited.error) return attempts.refuse(context, limited.error, subject, limited.headers);
  pipeline.audit.recordUse('auth.succeeded', subject, context, VIA_SESSION);
  return {
    ok: true,
    principal: {
      kind: 'session',
      id: session.id,
      ownerId: session.ownerId,
      scopes: session.scopes,
      resources: session.resources ?? null,
      type: 'secret',
      environment: config.environments.includes('live') ? 'live' : 'test',
      session,
    },
    headers: limited.headers,
    context,
    keygate: pipeline.keygate,
  };
}
