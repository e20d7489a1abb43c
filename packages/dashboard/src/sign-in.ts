import { type Failure, isKeygateError, type Keygate, readBody } from '@keygate/core';
import {
  linksFrom,
  type PageRequest,
  type PageResponse,
  renderShell,
  respond,
  SECURITY_HEADERS,
  type ShellBase,
} from './shell.js';

/** Largest sign-in form accepted, in bytes. */
export const MAX_SIGN_IN_BODY = 4096;

const HTML = { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' };

/** The page's sign-in (`GET` the form, `POST` a key) and sign-out (`POST`). */
export interface SessionRoutes {
  signIn(req: PageRequest): Promise<PageResponse>;
  signOut(req: PageRequest): Promise<PageResponse>;
}

interface SessionRoutesOptions {
  /** Where the page is, below the mount point: signing in leads there. */
  pagePath: string;
  signInPath: string;
  base: ShellBase;
}

/**
 * Signing in to the page with an admin key: the key goes to the server once, in a form from this
 * site only (login CSRF), and the browser keeps a session cookie that stands for the key, with
 * the key's current record, until it signs out, the session ends, or the key changes.
 */
export function createSessionRoutes(
  keygate: Keygate,
  { pagePath, signInPath, base }: SessionRoutesOptions,
): SessionRoutes {
  const form = (
    req: PageRequest,
    status: number,
    message: string | null,
    headers: Record<string, string> = {},
  ) =>
    respond(
      req.request.method,
      status,
      { ...HTML, ...headers },
      renderShell({
        ...base,
        ...linksFrom(base, req.base),
        mountPath: `${req.base}${pagePath}`,
        session: null,
        view: 'sign-in',
        message,
      }),
    );
  const redirect = (to: string, headers: Record<string, string> = {}): PageResponse => ({
    status: 303,
    headers: { ...SECURITY_HEADERS, 'Cache-Control': 'no-store', Location: to, ...headers },
    body: '',
  });

  return {
    async signIn(req) {
      const method = req.request.method.toUpperCase();
      if (method === 'GET' || method === 'HEAD') {
        const session = await keygate.sessions.current(req.request).catch(() => null);
        if (session === 'page') return redirect(`${req.base}${pagePath}`);
        const cleared: Record<string, string> =
          session === 'ended' ? { 'Set-Cookie': keygate.sessions.clearCookie(req.origin) } : {};
        return form(req, 200, null, cleared);
      }
      if (method !== 'POST') return form(req, 405, null, { Allow: 'GET, HEAD, POST' });
      if (!fromThisSite(req)) {
        return form(req, 403, 'Sign-in forms are accepted from this site only.');
      }
      let secret: string;
      try {
        secret = keyOf(await formBody(req));
      } catch (error) {
        const tooLarge = isKeygateError(error) && error.reason === 'body_too_large';
        return form(
          req,
          tooLarge ? 413 : 400,
          tooLarge ? 'That form was too large.' : 'That form could not be read.',
        );
      }
      let signedIn: Awaited<ReturnType<Keygate['sessions']['signIn']>>;
      try {
        signedIn = await keygate.sessions.signIn({
          secret,
          request: req.request,
          origin: req.origin,
        });
      } catch (error) {
        keygate.logger.error('[keygate] sign-in failed:', error);
        return form(req, 503, UNAVAILABLE, { 'Retry-After': '1' });
      }
      if (!signedIn.ok) {
        const retry = signedIn.headers['Retry-After'];
        return form(
          req,
          signedIn.status,
          explain(signedIn, keygate.adminScope),
          retry ? { 'Retry-After': retry } : {},
        );
      }
      return redirect(`${req.base}${pagePath}`, { 'Set-Cookie': signedIn.cookie });
    },

    async signOut(req) {
      if (req.request.method.toUpperCase() !== 'POST') {
        return form(req, 405, null, { Allow: 'POST' });
      }
      if (!fromThisSite(req)) return form(req, 403, 'Sign-out is accepted from this site only.');
      try {
        const { cookie } = await keygate.sessions.signOut(req.request, req.origin);
        return redirect(`${req.base}${signInPath}`, { 'Set-Cookie': cookie });
      } catch (error) {
        keygate.logger.error('[keygate] sign-out failed:', error);
        return form(req, 503, 'The session could not be ended: try again.', { 'Retry-After': '1' });
      }
    },
  };
}

const UNAVAILABLE = 'Keys cannot be checked right now: try again in a moment.';

/** What a person reads when a key does not sign in: what is wrong, never whether a key exists. */
function explain({ error }: Failure, adminScope: string): string {
  switch (error.code) {
    case 'INVALID_API_KEY':
      return 'That key was not accepted: it is unknown, revoked, expired, rotated or mistyped.';
    case 'INSUFFICIENT_SCOPE':
      return `That key cannot manage keys: it needs the ${adminScope} scope.`;
    case 'FORBIDDEN':
      return error.reason === 'key_type'
        ? 'Public keys cannot sign in: use a secret key.'
        : 'That key may not be used from here: its IP or origin restrictions do not allow it.';
    case 'RATE_LIMITED':
      return 'Too many failed attempts from your address: wait a few minutes and try again.';
    case 'SERVICE_UNAVAILABLE':
      return UNAVAILABLE;
    default:
      return error.message;
  }
}

/**
 * Whether the form came from this site (login CSRF: another site must not sign a visitor in to
 * the attacker's key): the browser says so (`Sec-Fetch-Site`), or its `Origin` is this origin.
 */
function fromThisSite({ request, origin }: PageRequest): boolean {
  const site = request.headers.get('sec-fetch-site');
  if (site !== null) return site === 'same-origin';
  const claimed = request.headers.get('origin');
  if (claimed === null || !URL.canParse(claimed) || !URL.canParse(origin)) return false;
  return new URL(claimed).origin === new URL(origin).origin;
}

/** The form as text, read up to its limit, or what a body parser made of it. */
async function formBody(req: PageRequest): Promise<unknown> {
  const body = await req.body();
  if (typeof body === 'object' && body !== null && Symbol.asyncIterator in body) {
    const length = req.request.headers.get('content-length');
    return readBody(body as AsyncIterable<Uint8Array>, length, MAX_SIGN_IN_BODY);
  }
  return body;
}

function keyOf(body: unknown): string {
  if (typeof body === 'string') return new URLSearchParams(body).get('key')?.trim() ?? '';
  const key = (body as { key?: unknown } | null | undefined)?.key;
  return typeof key === 'string' ? key.trim() : '';
}
