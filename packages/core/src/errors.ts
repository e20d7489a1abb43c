/** Every failure a client can see, with its status and default message: the one place they are defined. */
export const ERROR_CODES = {
  AUTH_REQUIRED: { status: 401, message: 'Authentication required' },
  INVALID_API_KEY: { status: 401, message: 'Invalid API key' },
  INVALID_REQUEST: { status: 400, message: 'Invalid request' },
  INVALID_SIGNATURE: { status: 401, message: 'The report signature does not verify' },
  INSUFFICIENT_SCOPE: { status: 403, message: 'API key lacks the required scope' },
  ACCESS_DENIED: { status: 403, message: 'Access to this resource is denied' },
  FORBIDDEN: { status: 403, message: 'This request is not allowed for this API key' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  RATE_LIMITED: { status: 429, message: 'Rate limit exceeded' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'Service temporarily unavailable' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Every way a configuration is refused, when a factory is called (never per request). */
export const CONFIG_ERROR_CODES = {
  UNKNOWN_OPTION: 'an option the factory does not take (a misspelling, or one it no longer has)',
  INVALID_OPTION: 'an option whose value cannot work; the message names the option',
  CONFLICTING_OPTIONS: 'options that exclude each other, e.g. `{ keygate }` with keygate options',
} as const;

export type ConfigErrorCode = keyof typeof CONFIG_ERROR_CODES;

export interface ErrorBody {
  success: false;
  error: string;
  code: ErrorCode;
}

export interface KeygateErrorOptions {
  /** What the client reads. Default: the code's message. */
  message?: string;
  /** For the audit trail only: never reaches the client. Default: the code in lower case. */
  reason?: string;
  /** The scope named in the `WWW-Authenticate` challenge of `INSUFFICIENT_SCOPE`. */
  requiredScope?: string;
  cause?: unknown;
}

/**
 * A refused request or key-management call: what a client sees (`code`, `status`, `message`), and
 * for the audit trail only, why (`reason`). Thrown by the key lifecycle (`keygate.keys`), returned
 * in a failed decision by `authenticate` and `authorize`.
 */
export class KeygateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly reason: string;
  /** Value of the `WWW-Authenticate` header, when the status calls for one. */
  readonly wwwAuthenticate: string | undefined;

  constructor(code: ErrorCode, options: KeygateErrorOptions = {}) {
    const spec = ERROR_CODES[code];
    super(
      options.message ?? spec.message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'KeygateError';
    this.code = code;
    this.status = spec.status;
    this.reason = options.reason ?? code.toLowerCase();
    this.wwwAuthenticate = challenge(code, options.requiredScope);
  }

  toJSON(): ErrorBody {
    return { success: false, error: this.message, code: this.code };
  }
}

/**
 * Whether `value` is a `KeygateError`, of this copy of the core or another: an app may load the
 * CommonJS and the ESM build side by side (a store from one, an adapter from the other), each with
 * its own class, so `instanceof` alone would take a refused value for an outage.
 */
export function isKeygateError(value: unknown): value is KeygateError {
  if (value instanceof KeygateError) return true;
  const code = (value as Partial<KeygateError> | null)?.code;
  return (
    value instanceof Error &&
    value.name === 'KeygateError' &&
    typeof code === 'string' &&
    Object.hasOwn(ERROR_CODES, code)
  );
}

function challenge(code: ErrorCode, requiredScope: string | undefined): string | undefined {
  if (code === 'AUTH_REQUIRED') return 'Bearer realm="api"';
  if (code === 'INVALID_API_KEY') return 'Bearer realm="api", error="invalid_token"';
  if (code === 'INSUFFICIENT_SCOPE') {
    return `Bearer realm="api", error="insufficient_scope", scope="${requiredScope ?? ''}"`;
  }
  return undefined;
}

/** A refused request, ready to answer: status, JSON body and headers (challenge, `Retry-After`, limits). */
export interface Failure {
  ok: false;
  error: KeygateError;
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/** A misconfiguration, thrown once when a factory is called; never per request. */
export class KeygateConfigError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string) {
    super(`[keygate:${code}] ${message}`);
    this.name = 'KeygateConfigError';
    this.code = code;
  }
}

/** A failure as it is answered: status, JSON body, and headers with the `WWW-Authenticate` challenge. */
export function failure(error: KeygateError, headers: Record<string, string> = {}): Failure {
  return {
    ok: false,
    error,
    status: error.status,
    body: error.toJSON(),
    // A copy: the caller's headers may be shared, and the renderer may add to these.
    headers: error.wwwAuthenticate
      ? { ...headers, 'WWW-Authenticate': error.wwwAuthenticate }
      : { ...headers },
  };
}
