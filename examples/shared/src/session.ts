import { randomBytes } from 'node:crypto';
import type { KeygateRequest, Session, SessionResolver } from '@keygate/core';

export const SESSION_COOKIE = 'keygate_session';

/**
 * Browser sessions for the reference app: an opaque cookie mapped to a session in memory.
 * A real app resolves its own login session here (database, signed cookie, ...).
 */
export class DemoSessions {
  readonly #sessions = new Map<string, Session>();

  issue(session: Omit<Session, 'id'>): { token: string; cookie: string } {
    const token = randomBytes(24).toString('base64url');
    this.#sessions.set(token, { id: `sess_${token.slice(0, 8)}`, ...session });
    return { token, cookie: `${SESSION_COOKIE}=${token}` };
  }

  readonly resolver: SessionResolver = (req: KeygateRequest) => {
    const token = readCookie(req.headers.get('cookie'), SESSION_COOKIE);
    return token ? (this.#sessions.get(token) ?? null) : null;
  };
}

function readCookie(header: string | null, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return null;
}
