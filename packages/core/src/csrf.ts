import { KeygateError } from './errors.js';
import type { KeygateRequest, Principal } from './types.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `scheme://host[:port]` in the form `URL#origin` gives, or `null` for anything else. */
export function normaliseOrigin(origin: string): string | null {
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? null : url.origin;
  } catch {
    return null;
  }
}

/**
 * Refuses a state-changing request that a browser sent for another site: a cookie goes with
 * every request to its site, so a session (the app's, or a page session) alone does not show
 * that the user meant it. The
 * request must come from `ownOrigin` or a trusted one (`Origin`), or say it is same-origin
 * (`Sec-Fetch-Site`). Requests authenticated by a key are not at risk: a page cannot attach one.
 */
export function crossSiteRefusal(
  principal: Principal,
  req: Pick<KeygateRequest, 'method' | 'headers'>,
  ownOrigin: string,
  trustedOrigins: ReadonlySet<string>,
): KeygateError | null {
  const byCookie = principal.kind === 'session' || principal.pageSession !== undefined;
  if (!byCookie || SAFE_METHODS.has(req.method.toUpperCase())) return null;
  const origin = req.headers.get('origin');
  if (origin !== null) {
    const claimed = normaliseOrigin(origin);
    if (
      claimed !== null &&
      (claimed === normaliseOrigin(ownOrigin) || trustedOrigins.has(claimed))
    ) {
      return null;
    }
  } else if (req.headers.get('sec-fetch-site') === 'same-origin') {
    return null;
  }
  return new KeygateError('FORBIDDEN', {
    message: 'Cross-site requests cannot change API keys',
    reason: 'cross_site',
  });
}

/**
 * Refuses a management body that is not JSON (415): an HTML form can only send text, URL-encoded
 * or multipart bodies, so with this no form on any site can drive the API.
 */
export function mediaTypeRefusal(headers: KeygateRequest['headers']): KeygateError | null {
  const type = headers.get('content-type');
  if (type === null) {
    const length = headers.get('content-length');
    const hasBody =
      headers.get('transfer-encoding') !== null || (length !== null && length !== '0');
    return hasBody ? new KeygateError('UNSUPPORTED_MEDIA_TYPE') : null;
  }
  const essence = type.split(';')[0]!.trim().toLowerCase();
  return essence === 'application/json' ? null : new KeygateError('UNSUPPORTED_MEDIA_TYPE');
}
