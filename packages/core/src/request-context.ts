import { randomUUID } from 'node:crypto';
import type { KeyFormat } from './key-format.js';
import type { AuditContext, KeygateRequest } from './types.js';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * What every audit record of a request says about it: client IP, user agent, method, the path
 * without its query string, and the request id (the framework's, else the client's
 * `x-request-id` when it is a plain token; none is generated until an event is recorded). A key
 * pasted into the path, user agent or request id is cut to its start before it is recorded, and
 * before the text is shortened (which could leave most of it).
 */
export function requestContext(req: KeygateRequest, path: string, format: KeyFormat): AuditContext {
  const userAgent = req.headers.get('user-agent');
  const requested = req.requestId ?? req.headers.get('x-request-id');
  return {
    ip: req.ip ?? null,
    userAgent: userAgent === null ? null : format.redact(userAgent).slice(0, 512),
    method: req.method,
    path: format.redact(path).slice(0, 2048),
    requestId: requested && REQUEST_ID.test(requested) ? format.redact(requested) : null,
  };
}

/** The request's id: the one it came with, or one generated now and shared by its later events. */
export function requestIdOf(ctx: AuditContext): string {
  ctx.requestId ??= randomUUID();
  return ctx.requestId;
}
