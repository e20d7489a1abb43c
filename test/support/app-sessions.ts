import { randomBytes } from 'node:crypto';
import type { KeygateRequest, Session, SessionResolver } from '@keygate/core';

/** The cookie an application's own sign-in sets in these tests (not keygate's page sessions). */
export const APP_SESSION_COOKIE = 'app_session';

/**
 * An application's own browser sessions, as a `session` resolver sees them: an opaque cookie
 * mapped to a session in memory. Stands for an app's user sign-in in tests of the resolver.
 */
export class AppSessions {
  readonly #sessions = new Map<string, Session>();

  issue(session: Omit<Session, 'id'>): { cookie: string } {
    const token = randomBytes(24).toString('base64url');
    this.#sessions.set(token, { id: `sess_${token.slice(0, 8)}`, ...session });
    return { cookie: `${APP_SESSION_COOKIE}=${token}` };
  }

  readonly resolver: SessionResolver = (req: KeygateRequest) => {
    const token = readCookie(req.headers.get('cookie'), APP_SESSION_COOKIE);
    return (token && this.#sessions.get(token)) || null;
  };
}

function readCookie(header: string | null, name: string): string | null {
  for (const part of header?.split(';') ?? []) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return null;
}
