import type { Config } from './config.ts';
import type { ApiKey, AuditEvent, IssuedKey, Me, Usage, UsageRange } from './types.ts';

/** A refusal from the management router, with its stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// sessionStorage only: gone when the tab closes, never written to localStorage or a URL.
const KEY_STORAGE = 'keygate.dashboard.key';
export const pastedKey = {
  get: (): string | null => sessionStorage.getItem(KEY_STORAGE),
  set: (key: string): void => sessionStorage.setItem(KEY_STORAGE, key),
  clear: (): void => sessionStorage.removeItem(KEY_STORAGE),
};

type Body = Record<string, unknown>;

export interface Api {
  me(): Promise<Me>;
  list(): Promise<ApiKey[]>;
  get(id: string): Promise<ApiKey>;
  create(input: Body): Promise<IssuedKey>;
  update(id: string, patch: Body): Promise<ApiKey>;
  rotate(id: string, gracePeriodSeconds: number): Promise<IssuedKey>;
  revoke(id: string): Promise<void>;
  events(id: string, limit: number): Promise<AuditEvent[]>;
  usage(id: string, range: UsageRange): Promise<Usage>;
}

/** Every call goes through the management router, as the signed-in key (Bearer) or session (cookie). */
export function createApi(config: Config, onSignedOut: () => void): Api {
  async function call<T>(method: string, path: string, body?: Body): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const key = pastedKey.get();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${config.managementPath}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'NETWORK', 'The server could not be reached. Check your connection.');
    }
    const json = (await response.json().catch(() => null)) as {
      success?: boolean;
      data?: T;
      error?: string;
      code?: string;
    } | null;
    if (!response.ok || !json?.success) {
      const error = new ApiError(
        response.status,
        json?.code ?? `HTTP_${response.status}`,
        json?.error ?? `The server answered ${response.status}.`,
      );
      if (response.status === 401 && path !== '/me') onSignedOut();
      throw error;
    }
    return json.data as T;
  }

  const id = (value: string) => `/${encodeURIComponent(value)}`;
  return {
    me: () => call('GET', '/me'),
    async list() {
      // Every page, so search, filters and paging work on the whole list.
      const keys: ApiKey[] = [];
      for (let after: string | undefined; keys.length < 10_000; ) {
        const query = `?limit=200&include_revoked=true${after ? `&after=${encodeURIComponent(after)}` : ''}`;
        const page = await call<ApiKey[]>('GET', query);
        keys.push(...page);
        if (page.length < 200) break;
        after = page[page.length - 1]!.id;
      }
      return keys;
    },
    get: (key) => call('GET', id(key)),
    create: (input) => call('POST', '', input),
    update: (key, patch) => call('PATCH', id(key), patch),
    rotate: (key, gracePeriodSeconds) => call('POST', `${id(key)}/rotate`, { gracePeriodSeconds }),
    revoke: async (key) => {
      await call<undefined>('DELETE', id(key));
    },
    events: (key, limit) => call('GET', `${id(key)}/events?limit=${limit}`),
    usage: (key, range) => call('GET', `${id(key)}/usage?range=${range}`),
  };
}
