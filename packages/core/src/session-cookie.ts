/** The page session's cookie: its names, its token, and the `Set-Cookie` values that set and clear it. */
import type { KeygateRequest } from './types.js';

/** The cookie over plain HTTP, and over HTTPS (where `__Host-` makes the browser refuse one set by another host or path). */
export const SESSION_COOKIE = 'keygate_session';
export const SECURE_SESSION_COOKIE = '__Host-keygate_session';

/** 32 random bytes as hex: what a session cookie carries. */
export const TOKEN = /^[0-9a-f]{64}$/;

export interface SessionToken {
  value: string;
  /** Whether it came as the `__Host-` cookie. */
  secure: boolean;
}

/** The session token a request carries, the `__Host-` cookie first. */
export function tokenOf(headers: KeygateRequest['headers']): SessionToken | null {
  const header = headers.get('cookie');
  if (header === null) return null;
  const secure = readCookie(header, SECURE_SESSION_COOKIE);
  if (secure !== null) return { value: secure, secure: true };
  const plain = readCookie(header, SESSION_COOKIE);
  return plain === null ? null : { value: plain, secure: false };
}

// One cookie by name, in one pass: a cookie-parsing library would weigh more than these lines.
function readCookie(header: string, name: string): string | null {
  for (const part of header.split(';')) {
    const equals = part.indexOf('=');
    if (equals !== -1 && part.slice(0, equals).trim() === name)
      return part.slice(equals + 1).trim();
  }
  return null;
}

export function sessionCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  const name = secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
  return `${name}=${token}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; ${secure ? 'Secure; ' : ''}SameSite=Strict`;
}

export function clearCookie(secure: boolean): string {
  return sessionCookie('', secure, 0);
}

export function isHttps(origin: string): boolean {
  return origin.toLowerCase().startsWith('https:');
}

export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/** A public name for a session: the start of its token's hash, which tells nothing of the token. */
export function sessionId(tokenHash: string): string {
  return `ses_${tokenHash.slice(0, 16)}`;
}
