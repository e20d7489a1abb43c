import type { Keygate } from './keygate.js';
import type { Answer } from './types.js';

/**
 * A readiness check's answer (`GET /health` behind a load balancer or Kubernetes): 200 while the
 * instance takes traffic, with whether its key store answers (`store: 'down'` while requests are
 * served from the cache); 503 once it is shutting down (`keygate.drain()`), so that it is taken
 * out of rotation before it stops listening.
 */
export function readiness(keygate: Pick<Keygate, 'draining' | 'storeAvailable'>): Answer {
  if (keygate.draining) {
    return {
      status: 503,
      headers: { 'Cache-Control': 'no-store', 'Retry-After': '1' },
      body: { success: false, error: 'Shutting down', code: 'SERVICE_UNAVAILABLE' },
    };
  }
  return {
    status: 200,
    headers: { 'Cache-Control': 'no-store' },
    body: { success: true, data: { status: 'ok', store: keygate.storeAvailable ? 'up' : 'down' } },
  };
}
