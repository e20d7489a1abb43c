import type { Keygate, KeygateRequest } from '@keygate/core';
import type { DemoSessions } from './session.js';

export interface LoginRequest {
  method: string;
  headers: KeygateRequest['headers'];
  ip: string | undefined;
  /** The form body as text. */
  body: () => Promise<string>;
}

export interface LoginResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const SESSION_TTL_MS = 60 * 60 * 1000;
/** Largest sign-in form accepted, in bytes. */
export const MAX_LOGIN_BODY = 4096;

const HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

function page(message: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · keygate demo</title></head>
<body>
<main>
<h1>Sign in to the keygate demo</h1>
<p>The demo has no user accounts: an owner's key (a live secret key with <code>manage:keys</code>, no
expiry, restrictions or limit of its own, like the key the app printed on its first start) opens a
browser session for one hour. The session ends when the key is revoked.</p>
${message ? `<p role="alert"><strong>${message}</strong></p>` : ''}
<form method="post" action="/login">
<label for="key">Admin key</label>
<input id="key" name="key" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
<p><a href="/dashboard">Back to the key-management page</a></p>
</main>
</body></html>
`;
}

/** Same origin only, so another site cannot sign a visitor in to its own account (login CSRF). */
function sameOrigin(headers: KeygateRequest['headers']): boolean {
  const site = headers.get('sec-fetch-site');
  if (site) return site === 'same-origin';
  const origin = headers.get('origin');
  const host = headers.get('host');
  return origin !== null && host !== null && URL.canParse(origin) && new URL(origin).host === host;
}

/**
 * The reference app's sign-in: exchanges an admin key for a session cookie, so the
 * key-management page can be used with a browser session. The session holds no more than the key.
 */
export function demoLogin(keygate: Keygate, sessions: DemoSessions) {
  return async (req: LoginRequest): Promise<LoginResponse> => {
    if (req.method === 'GET' || req.method === 'HEAD') {
      return { status: 200, headers: HEADERS, body: page(null) };
    }
    if (req.method !== 'POST') {
      return { status: 405, headers: { ...HEADERS, Allow: 'GET, POST' }, body: page(null) };
    }
    if (!sameOrigin(req.headers)) {
      return {
        status: 403,
        headers: HEADERS,
        body: page('Sign-in forms are accepted from this site only.'),
      };
    }
    let form: string;
    try {
      form = await req.body();
    } catch {
      return { status: 413, headers: HEADERS, body: page('That form was too large.') };
    }
    const key = new URLSearchParams(form).get('key')?.trim() ?? '';
    const decision = await keygate.authenticate({
      method: 'POST',
      url: '/login',
      headers: {
        get: (name) => (name === 'authorization' ? `Bearer ${key}` : req.headers.get(name)),
      },
      ip: req.ip,
    });
    const principal = decision.ok ? decision.principal : null;
    if (
      principal?.kind !== 'key' ||
      principal.type !== 'secret' ||
      principal.environment !== 'live' ||
      !principal.scopes.includes(keygate.adminScope) ||
      // A session's delegation bounds are its scopes and resources only: a key bounded by more
      // (an expiry, a limit, restrictions) would open a session reaching further than itself.
      principal.key.expiresAt !== null ||
      principal.key.rateLimit !== null ||
      Object.values(principal.key.restrictions ?? {}).some((list) => list.length > 0)
    ) {
      return {
        status: 401,
        headers: HEADERS,
        body: page(
          `That is not a live secret key with ${keygate.adminScope} and no expiry, restrictions or limit of its own.`,
        ),
      };
    }
    const { id } = principal.key;
    const ttlMs = SESSION_TTL_MS;
    const { cookie } = sessions.issue(
      {
        ownerId: principal.ownerId,
        scopes: [...principal.scopes],
        resources: principal.resources && [...principal.resources],
        admin: true,
      },
      {
        ttlMs,
        stillValid: async () => {
          const current = await keygate.keys.get(id).catch(() => null);
          return current !== null && current.revokedAt === null;
        },
      },
    );
    return {
      status: 303,
      headers: {
        ...HEADERS,
        Location: '/dashboard',
        'Set-Cookie': `${cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(ttlMs / 1000)}`,
      },
      body: '',
    };
  };
}
