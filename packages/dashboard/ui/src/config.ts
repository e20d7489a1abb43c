/** What the server embedded in the page (see `DashboardConfig` in src/dashboard.ts). */
export interface Config {
  title: string;
  mountPath: string;
  managementPath: string;
  scopes: string[];
  publicScopes: string[];
  environments: Array<'live' | 'test'>;
  adminScope: string;
  sessions: boolean;
  signInUrl: string | null;
}

export function readConfig(): Config {
  const element = document.getElementById('keygate-dashboard-config');
  return JSON.parse(element?.textContent ?? '{}') as Config;
}
