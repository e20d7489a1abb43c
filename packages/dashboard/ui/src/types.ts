export type KeyType = 'secret' | 'public';
export type Environment = 'live' | 'test';

export interface Restrictions {
  ips?: string[];
  referrers?: string[];
  endpoints?: string[];
}

export interface RateLimit {
  perSecond?: number;
  burst?: number;
  daily?: number;
}

/** A key as the management router returns it (dates as ISO strings). */
export interface ApiKey {
  id: string;
  name: string;
  ownerId: string;
  type: KeyType;
  environment: Environment;
  prefix: string;
  start: string;
  scopes: string[];
  resources: string[] | null;
  restrictions: Restrictions | null;
  rateLimit: RateLimit | null;
  metadata: Record<string, unknown> | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  previousDigestExpiresAt: string | null;
}

export interface IssuedKey extends ApiKey {
  secret: string;
}

/** `GET /me`: who is signed in, and so the bounds of what they may delegate. */
export interface Me {
  kind: 'key' | 'session';
  id: string;
  ownerId: string;
  type: KeyType;
  environment: Environment;
  scopes: string[];
  resources: string[] | null;
  name?: string;
  start?: string;
  expiresAt?: string | null;
  restrictions?: Restrictions | null;
  rateLimit?: RateLimit | null;
  /** Set when signed in with a page session. */
  session?: { id: string; expiresAt: string } | null;
}

/** Who changed a key, as its audit event records them. */
export interface Actor {
  name?: string;
  start?: string;
  via?: 'key' | 'page_session' | 'session';
}

export interface AuditEvent {
  id: string;
  at: string;
  action: string;
  outcome: 'success' | 'failure';
  reason: string | null;
  keyId: string | null;
  keyStart: string | null;
  actor: string | null;
  ip: string | null;
  userAgent: string | null;
  method: string | null;
  path: string | null;
  detail: Record<string, unknown> | null;
}

export type UsageRange = '24h' | '7d' | '30d';

export interface Usage {
  keyId: string;
  range: UsageRange;
  interval: 'hour' | 'day';
  from: string;
  to: string;
  buckets: Array<{ start: string; served: number; failed: number; rateLimited: number }>;
}
