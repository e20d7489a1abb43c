/** Every failure a client can see, with its status and default message: the one place they are defined. */
export const ERROR_CODES = {
  AUTH_REQUIRED: { status: 401, message: 'Authentication required' },
  INVALID_API_KEY: { status: 401, message: 'Invalid API key' },
  INVALID_REQUEST: { status: 400, message: 'Invalid request' },
  INSUFFICIENT_SCOPE: { status: 403, message: 'API key lacks the required scope' },
  ACCESS_DENIED: { status: 403, message: 'Access to this resource is denied' },
  FORBIDDEN: { status: 403, message: 'This request is not allowed for this API key' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  RATE_LIMITED: { status: 429, message: 'Rate limit exceeded' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'Service temporarily unavailable' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  success: false;
  error: string;
  code: ErrorCode;
}

/** A decided failure. `reason` is for the audit trail only and never reaches the client. */
export class KeygateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly reason: string;
  /** Value of the `WWW-Authenticate` header, when the status calls for one. */
  readonly wwwAuthenticate: string | undefined;

  constructor(
    code: ErrorCode,
    options: { message?: string; reason?: string; requiredScope?: string } = {},
  ) {
    const spec = ERROR_CODES[code];
    super(options.message ?? spec.message);
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

function challenge(code: ErrorCode, requiredScope: string | undefined): string | undefined {
  if (code === 'AUTH_REQUIRED') return 'Bearer realm="api"';
  if (code === 'INVALID_API_KEY') return 'Bearer realm="api", error="invalid_token"';
  if (code === 'INSUFFICIENT_SCOPE') {
    return `Bearer realm="api", error="insufficient_scope", scope="${requiredScope ?? ''}"`;
  }
  return undefined;
}

/** A misconfiguration, thrown once when a factory is called; never per request. */
export class KeygateConfigError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`[keygate:${code}] ${message}`);
    this.name = 'KeygateConfigError';
    this.code = code;
  }
}

/**
 * A key-management call refused: for its input (`INVALID_REQUEST`: bad scope for a public key, a
 * value the store cannot hold), an unknown id (`NOT_FOUND`), or a key reaching further than its
 * caller (`FORBIDDEN`).
 */
export class KeyManagementError extends Error {
  readonly code: 'INVALID_REQUEST' | 'NOT_FOUND' | 'FORBIDDEN';
  constructor(
    code: 'INVALID_REQUEST' | 'NOT_FOUND' | 'FORBIDDEN',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'KeyManagementError';
    this.code = code;
  }
}

/** A request body over the limit: refused before it was read to the end. */
export class BodyTooLargeError extends KeyManagementError {
  constructor() {
    super('INVALID_REQUEST', 'the request body is too large');
    this.name = 'BodyTooLargeError';
  }
}
