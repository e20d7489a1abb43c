import { type Keygate, KeygateConfigError } from '@keygate/core';
import { files } from '../ui/dist/assets.js';
import {
  linksFrom,
  type PageRequest,
  type PageResponse,
  renderShell,
  respond,
  type ShellBase,
} from './shell.js';
import { createSessionRoutes, type SessionRoutes } from './sign-in.js';

/** The page, its sign-in and its sign-out, and what it offers: what every framework's `keyDashboard()` takes. */
export interface KeyDashboardOptions {
  /** The instance whose keys the page manages (and whose sessions it signs in). */
  keygate: Keygate;
  /** Where the page is, below the framework's mount point. Default `/dashboard`. */
  path?: string;
  /**
   * Where a browser signs in with an admin key for a page session (`GET` the form, `POST` it), or
   * `false` for no page sessions: a key pasted in the page then stays in the tab and goes with
   * each call. Default `/login` when `keygate.sessions` are on, else `false`.
   */
  signInPath?: string | false;
  /** Where a page session signs out (`POST`). Default `/logout`. */
  signOutPath?: string;
  /**
   * The scopes your application declares, offered as choices when a key is created or edited.
   * Default: none beyond the signed-in admin's own scopes.
   */
  scopes?: readonly string[];
  /** Where the management router is mounted, as the browser sees it. Default `/v1/api-keys`. */
  managementPath?: string;
  /** Your application's own sign-in page (for its session resolver), linked from the sign-in screen. Default: none. */
  signInUrl?: string;
  /** The page's title. Default `API keys`. */
  title?: string;
}

/** The page as one handler, the same on every framework. */
export interface KeyPage {
  /** Whether `path` (below the mount point) is the page's, its assets', its sign-in's or its sign-out's. */
  owns(path: string): boolean;
  handle(req: PageRequest): Promise<PageResponse>;
}

const CONTENT_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/**
 * The key-management page, its assets (built into this module: nothing is read from disk), and
 * its sign-in and sign-out. Options are checked here, once.
 */
export function createKeyPage(options: KeyDashboardOptions): KeyPage {
  const { keygate } = options;
  const pagePath = checkPath(options.path ?? '/dashboard', 'path');
  if (pagePath === '/') {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'path must not be / (the page owns its subtree)',
    );
  }
  const signInPath =
    options.signInPath === undefined
      ? keygate.sessions.enabled
        ? '/login'
        : false
      : options.signInPath && checkPath(options.signInPath, 'signInPath');
  if (signInPath !== false && !keygate.sessions.enabled) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      'signInPath needs page sessions, which this keygate has none of (its key store keeps no sessions)',
    );
  }
  const signOutPath = checkPath(options.signOutPath ?? '/logout', 'signOutPath');
  const scopes = [...new Set(options.scopes ?? [])];
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !/^[\w.*:-]{1,100}$/.test(scope)) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `dashboard scope ${String(scope)} is not a scope`,
      );
    }
  }
  const base: ShellBase = {
    title: options.title ?? 'API keys',
    managementPath: checkPath(options.managementPath ?? '/v1/api-keys', 'managementPath'),
    scopes,
    publicScopes: [...keygate.publicScopes],
    environments: [...keygate.environments],
    adminScope: keygate.adminScope,
    signInUrl: options.signInUrl === undefined ? null : checkUrl(options.signInUrl),
    pageSessions: signInPath === false ? null : { signInPath, signOutPath },
  };
  const sessions: SessionRoutes | null =
    signInPath === false ? null : createSessionRoutes(keygate, { pagePath, signInPath, base });

  const isPage = (path: string) => path === pagePath || path.startsWith(`${pagePath}/`);
  const sameAs = (path: string, route: string) => path === route || path === `${route}/`;

  return {
    owns: (path) =>
      isPage(path) ||
      (sessions !== null && (sameAs(path, signInPath as string) || sameAs(path, signOutPath))),
    async handle(req) {
      if (sessions && sameAs(req.path, signInPath as string)) return sessions.signIn(req);
      if (sessions && sameAs(req.path, signOutPath)) return sessions.signOut(req);
      const method = req.request.method.toUpperCase();
      if (method !== 'GET' && method !== 'HEAD') {
        return respond(
          method,
          405,
          { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' },
          'Method Not Allowed',
        );
      }
      const below = req.path.slice(pagePath.length);
      if (below.startsWith('/assets/')) return asset(method, below.slice('/assets/'.length));
      const session = await keygate.sessions.current(req.request).catch(() => null);
      const headers: Record<string, string> = {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
      };
      // A cookie whose session is over is cleared, so the page stops sending it.
      if (session === 'ended') headers['Set-Cookie'] = keygate.sessions.clearCookie(req.origin);
      const html = renderShell({
        ...base,
        ...linksFrom(base, req.base),
        mountPath: `${req.base}${pagePath}`,
        session: session === 'ended' ? null : session,
        view: 'page',
        message: null,
      });
      return respond(method, 200, headers, html);
    },
  };
}

function asset(method: string, name: string): PageResponse {
  const body = /^[\w-]+\.\w+\.(js|css)$/.test(name) ? files[name] : undefined;
  if (body === undefined)
    return respond(method, 404, { 'Content-Type': 'text/plain' }, 'Not Found');
  return respond(
    method,
    200,
    {
      'Content-Type': CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)]!,
      'Cache-Control': 'public, max-age=31536000, immutable',
    },
    body,
  );
}

function checkPath(value: string, name: string): string {
  if (typeof value !== 'string' || !/^\/[\w./~-]*$/.test(value)) {
    throw new KeygateConfigError('INVALID_OPTION', `${name} must be a path such as /v1/api-keys`);
  }
  return value.replace(/\/+$/, '') || '/';
}

function checkUrl(value: string): string {
  if (typeof value === 'string' && /^\/(?!\/)[\w./~?=&%-]*$/.test(value)) return value;
  try {
    if (['http:', 'https:'].includes(new URL(value).protocol)) return value;
  } catch {}
  throw new KeygateConfigError('INVALID_OPTION', 'signInUrl must be a path or an http(s) URL');
}
