import { randomBytes } from 'node:crypto';
import type { KeygateRequest, Session, SessionResolver } from '@keygate/core';

export const SESSION_COOKIE = 'keygate_session';

interface Stored {
  session: Session;
  /** When the session ends (ms since the epoch); `Infinity` for none. */
  expiresAt: number;
  /** Asked on every request: the session ends as soon as this says no (e.g. its key was revoked). */
  stillValid?: () => Promise<boolean>;
}

export interface IssueOptions {
  /** Lifetime in ms. Default: none. */
  ttlMs?: number;
  /** Checked on every request; `false` ends the session. */
  stillValid?: () => Promise<boolean>;
}

/**
 * Browser sessions for the reference app: an opaque cookie mapped to a session in memory.
 * A real app resolves its own login session here (database, signed cookie, ...).
 */
export class DemoSessions {
  readonly #sessions = new Map<string, Stored>();

  issue(
    session: Omit<Session, 'id'>,
    options: IssueOptions = {},
  ): { token: string; cookie: string } {
    const token = randomBytes(24).toString('base64url');
    this.#sessions.set(token, {
      session: { id: `sess_${token.slice(0, 8)}`, ...session },
      expiresAt:
        options.ttlMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.ttlMs,
      stillValid: options.stillValid,
    });
    return { token, cookie: `${SESSION_COOKIE}=${token}` };
  }

  readonly resolver: SessionResolver = async (req: KeygateRequest) => {
    const token = readCookie(req.headers.get('cookie'), SESSION_COOKIE);
    const stored = token ? this.#sessions.get(token) : undefined;
    if (!token || !stored) return null;
    if (stored.expiresAt <= Date.now() || (stored.stillValid && !(await stored.stillValid()))) {
      this.#sessions.delete(token);
      return null;
    }
    return stored.session;
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
