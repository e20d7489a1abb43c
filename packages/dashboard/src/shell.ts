import type { KeygateRequest } from '@keygate/core';
import { script, style } from '../ui/dist/assets.js';

/** A request as each framework hands it to the page. */
export interface PageRequest {
  /** The request as keygate reads it (method, URL, headers, client IP). */
  request: KeygateRequest;
  /** The path below the framework's mount point: `/dashboard/keys/key_1`, `/login`. */
  path: string;
  /** The framework's mount point as requested (`''` at the root), which the page's links start with. */
  base: string;
  /** The request's own origin as the framework sees it (its proxy trust applied): `https://api.example.com`. */
  origin: string;
  /** The body, for the sign-in form: the request's stream (read here up to 4 KiB), or what a body parser made of it. */
  body: () => unknown;
}

export interface PageResponse {
  status: number;
  headers: Record<string, string>;
  /** Empty for `HEAD`. */
  body: string;
}

/** What the page reads at start-up (embedded in the HTML, never fetched). */
export interface DashboardConfig {
  title: string;
  /** Where the page is, as the browser sees it. */
  mountPath: string;
  managementPath: string;
  scopes: string[];
  publicScopes: string[];
  environments: string[];
  adminScope: string;
  signInUrl: string | null;
  /** Page sessions: where the sign-in form posts the key, and where signing out posts. */
  pageSessions: { signInPath: string; signOutPath: string } | null;
  /** Whether this request came with a session (`page` or the app's), so the page asks who it is only then. */
  session: 'page' | 'app' | null;
  /** `sign-in` on the sign-in path. */
  view: 'page' | 'sign-in';
  /** Why the last sign-in failed. */
  message: string | null;
}

export const SECURITY_HEADERS = {
  'Content-Security-Policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
} as const;

/** What a handler renders the shell from: everything in `DashboardConfig` a request does not decide. */
export type ShellBase = Omit<DashboardConfig, 'mountPath' | 'session' | 'view' | 'message'>;

/** The page's paths as the browser sees them, below the framework's mount point `mount`. */
export function linksFrom(base: ShellBase, mount: string): Pick<ShellBase, 'pageSessions'> {
  const { pageSessions } = base;
  return {
    pageSessions: pageSessions && {
      signInPath: `${mount}${pageSessions.signInPath}`,
      signOutPath: `${mount}${pageSessions.signOutPath}`,
    },
  };
}

export function respond(
  method: string,
  status: number,
  headers: Record<string, string>,
  body: string,
): PageResponse {
  return {
    status,
    headers: { ...SECURITY_HEADERS, ...headers },
    body: method.toUpperCase() === 'HEAD' ? '' : body,
  };
}

/** The HTML every view of the page starts from: its configuration, script and stylesheet. */
export function renderShell(config: DashboardConfig): string {
  const at = (file: string) => escapeHtml(`${config.mountPath}/assets/${file}`);
  // `<` escaped, so no value can close the data block early.
  const json = JSON.stringify(config).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(config.title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${at(style)}">
<script type="module" src="${at(script)}"></script>
<script type="application/json" id="keygate-dashboard-config">${json}</script>
</head>
<body>
<div id="app"><noscript>This page needs JavaScript.</noscript></div>
</body>
</html>
`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
