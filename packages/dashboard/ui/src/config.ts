/** What the server embedded in the page (see `DashboardConfig` in src/shell.ts). */
export interface Config {
  title: string;
  mountPath: string;
  managementPath: string;
  scopes: string[];
  publicScopes: string[];
  environments: Array<'live' | 'test'>;
  adminScope: string;
  signInUrl: string | null;
  /** Page sessions: where the sign-in form posts the key, and where signing out posts. */
  pageSessions: { signInPath: string; signOutPath: string } | null;
  /** Whether this request came with a session, so the page asks who it is only then. */
  session: 'page' | 'app' | null;
  view: 'page' | 'sign-in';
  /** Why the last sign-in failed. */
  message: string | null;
}

export function readConfig(): Config {
  const element = document.getElementById('keygate-dashboard-config');
  return JSON.parse(element?.textContent ?? '{}') as Config;
}
