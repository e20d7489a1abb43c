import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeygateConfigError } from './errors.js';
import type { Keygate } from './keygate.js';

export interface DashboardOptions {
  /**
   * The scopes your application declares, offered as choices when a key is created or edited.
   * Default: none beyond the signed-in admin's own scopes.
   */
  scopes?: readonly string[];
  /** Where the management router is mounted, as the browser sees it. Default `/v1/api-keys`. */
  managementPath?: string;
  /** Your application's own sign-in page, linked from the page's sign-in screen. Default: none. */
  signInUrl?: string;
  /** The page's title. Default `API keys`. */
  title?: string;
}

/** What an adapter's `keyDashboard()` takes: the instance whose keys the page manages, and the page's options. */
export interface KeyDashboardOptions extends DashboardOptions {
  keygate: Keygate;
}

export interface DashboardRequest {
  method: string;
  /** Where the page is mounted, as requested (`/dashboard`); a trailing slash is ignored. */
  mountPath: string;
  /** The path below the mount point: `` or `/` (the page), `/keys/key_1`, `/assets/main.1a2b3c.js`. */
  path: string;
}

export interface DashboardResponse {
  status: number;
  headers: Record<string, string>;
  /** Empty for `HEAD`. */
  body: string | Uint8Array<ArrayBuffer>;
}

/** What the page reads at start-up (embedded in the HTML, never fetched). */
export interface DashboardConfig {
  title: string;
  mountPath: string;
  managementPath: string;
  scopes: string[];
  publicScopes: string[];
  environments: string[];
  adminScope: string;
  /** Whether a browser session can sign in (the app configured a session resolver). */
  sessions: boolean;
  signInUrl: string | null;
}

/** Serves the key-management page: `(request) => response`, the same on every adapter. */
export type DashboardHandler = (req: DashboardRequest) => DashboardResponse;

const SECURITY_HEADERS = {
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

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

interface Assets {
  script: string;
  style: string;
  files: Map<string, Uint8Array<ArrayBuffer>>;
}

/** Built by `ui/build.mjs` at package build time (and by the repository's `prepare` step). */
interface Manifest {
  script: string;
  style: string;
}

/**
 * The page's handler. Reads the built assets once, now: a package without them (not built) is a
 * configuration error raised here, never a failing request.
 */
export function createDashboard(
  keygate: Keygate,
  options: DashboardOptions = {},
): DashboardHandler {
  const managementPath = checkPath(options.managementPath ?? '/v1/api-keys', 'managementPath');
  const signInUrl = options.signInUrl === undefined ? null : checkUrl(options.signInUrl);
  const scopes = [...new Set(options.scopes ?? [])];
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !/^[\w.*:-]{1,100}$/.test(scope)) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `dashboard scope ${String(scope)} is not a scope`,
      );
    }
  }
  const assets = loadAssets();
  const base = {
    title: options.title ?? 'API keys',
    managementPath,
    scopes,
    publicScopes: [...keygate.publicScopes],
    environments: [...keygate.environments],
    adminScope: keygate.adminScope,
    sessions: keygate.acceptsSessions,
    signInUrl,
  };

  return (req) => {
    const method = req.method.toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') {
      return respond(
        method,
        405,
        { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' },
        'Method Not Allowed',
      );
    }
    const assetName = /^\/assets\/([\w.-]+)$/.exec(req.path)?.[1];
    if (assetName !== undefined || req.path.startsWith('/assets/')) {
      const file = assetName === undefined ? undefined : assets.files.get(assetName);
      if (!file) return respond(method, 404, { 'Content-Type': 'text/plain' }, 'Not Found');
      return respond(
        method,
        200,
        {
          'Content-Type': CONTENT_TYPES[path.extname(assetName!)] ?? 'application/octet-stream',
          'Cache-Control': 'public, max-age=31536000, immutable',
        },
        file,
      );
    }
    const mountPath = req.mountPath.replace(/\/+$/, '');
    const html = renderShell({ ...base, mountPath }, assets);
    return respond(
      method,
      200,
      { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' },
      html,
    );
  };
}

function respond(
  method: string,
  status: number,
  headers: Record<string, string>,
  body: string | Uint8Array<ArrayBuffer>,
): DashboardResponse {
  return {
    status,
    headers: { ...SECURITY_HEADERS, ...headers },
    body: method === 'HEAD' ? '' : body,
  };
}

function renderShell(config: DashboardConfig, assets: Assets): string {
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
<link rel="stylesheet" href="${at(assets.style)}">
<script type="module" src="${at(assets.script)}"></script>
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

/** The package's root: the nearest folder with a package.json, from source or from any build layout. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dir;
}

let loaded: Assets | undefined;

function loadAssets(): Assets {
  if (loaded) return loaded;
  const dist = path.join(packageRoot(), 'ui', 'dist');
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(dist, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    throw new KeygateConfigError(
      'DASHBOARD_NOT_BUILT',
      `the key-management page's assets are missing (${dist}); build them with \`pnpm --filter @keygate/core build:ui\``,
    );
  }
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const name of readdirSync(path.join(dist, 'assets'))) {
    files.set(name, readFileSync(path.join(dist, 'assets', name)));
  }
  loaded = { script: manifest.script, style: manifest.style, files };
  return loaded;
}
