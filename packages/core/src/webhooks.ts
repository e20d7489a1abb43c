import { createHmac, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { KeygateError } from './errors.js';
import type { AuditEvent } from './types.js';

/** What an owner hears of through webhooks. */
export type WebhookEventType = 'key.leaked' | 'key.expiring' | 'key.revoked' | 'key.rate_limited';

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'key.leaked',
  'key.expiring',
  'key.revoked',
  'key.rate_limited',
];

/** One webhook event, as the outbox keeps it: the Standard Webhooks message and whose key it is about. */
export interface WebhookEvent {
  /** The `webhook-id`: the same on every attempt, so a receiver can drop a repeat. */
  id: string;
  type: WebhookEventType;
  ownerId: string | null;
  keyId: string | null;
  /** The JSON body: `{type, timestamp, data}`. */
  payload: { type: WebhookEventType; timestamp: string; data: Record<string, unknown> };
}

/**
 * The webhook event an audit event makes, if any: a revocation, a leak report, and a key's
 * refusal for its rate limit (one per key and hour: its id is the key's and the hour's, so the
 * outbox keeps the first).
 */
export function webhookEventOf(event: AuditEvent): WebhookEvent | null {
  const key = { keyId: event.keyId, keyStart: event.keyStart, ownerId: event.ownerId };
  const at = event.at.toISOString();
  const message = (id: string, type: WebhookEventType, data: Record<string, unknown>) => ({
    id,
    type,
    ownerId: event.ownerId,
    keyId: event.keyId,
    payload: { type, timestamp: at, data: { ...key, ...data } },
  });
  if (event.action === 'key.revoked' && event.outcome === 'success') {
    return message(`msg_${event.id}`, 'key.revoked', {
      revokedAt: at,
      actor: event.actor,
      reason: event.reason,
    });
  }
  if (event.action === 'key.leaked') {
    return message(`msg_${event.id}`, 'key.leaked', { reportedAt: at, ...event.detail });
  }
  if (event.action === 'auth.failed' && event.reason === 'rate_limited' && event.keyId !== null) {
    const hour = Math.floor(event.at.getTime() / 3_600_000);
    return message(`msg_rl_${event.keyId}_${hour}`, 'key.rate_limited', {
      at,
      hour: new Date(hour * 3_600_000).toISOString(),
    });
  }
  return null;
}

/** The `key.expiring` event of a key `within` its expiry (`7d` or `1d`): one per key, expiry and warning. */
export function expiringEvent(
  key: { id: string; start: string; ownerId: string; expiresAt: Date },
  within: '7d' | '1d',
  now: Date,
): WebhookEvent {
  return {
    id: `msg_exp_${key.id}_${within}_${key.expiresAt.getTime()}`,
    type: 'key.expiring',
    ownerId: key.ownerId,
    keyId: key.id,
    payload: {
      type: 'key.expiring',
      timestamp: now.toISOString(),
      data: {
        keyId: key.id,
        keyStart: key.start,
        ownerId: key.ownerId,
        expiresAt: key.expiresAt.toISOString(),
        within,
      },
    },
  };
}

/** A new endpoint secret: `whsec_` and 24 random bytes in base64, as Standard Webhooks has them. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

const SECRET = /^whsec_([A-Za-z0-9+/]{22,}={0,2})$/;

/** Whether `secret` is a Standard Webhooks secret keygate can sign with (`whsec_` and at least 16 bytes). */
export function isWebhookSecret(secret: string): boolean {
  const match = SECRET.exec(secret);
  return match !== null && Buffer.from(match[1]!, 'base64').length >= 16;
}

/**
 * The headers of one delivery attempt, per Standard Webhooks: `webhook-id`, `webhook-timestamp`
 * (seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256, keyed with the secret's
 * decoded bytes, of `id.timestamp.body`).
 */
export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const match = SECRET.exec(secret);
  if (!match) throw new Error('a webhook secret starts with whsec_ and holds base64');
  const signature = createHmac('sha256', Buffer.from(match[1]!, 'base64'))
    .update(`${id}.${timestampSeconds}.${body}`)
    .digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}

/** Which addresses a webhook may be delivered to besides public ones. */
export interface WebhookAddressPolicy {
  /** Loopback addresses (`127.0.0.0/8`, `::1`, `localhost`), for tests and local tools. Default `false`. */
  allowLoopback?: boolean;
  /** Private networks (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`, `100.64/10`). Default `false`. */
  allowPrivateNetworks?: boolean;
}

/** AWS's IPv6 metadata address (its IPv4 one, 169.254.169.254, is link-local). */
const METADATA_V6 = ipaddr.parse('fd00:ec2::254').toNormalizedString();

/**
 * Why an address must not receive webhooks, or `null` when it may: only public unicast addresses
 * by default; never link-local (where cloud metadata services answer), unspecified, multicast,
 * broadcast or reserved ranges, nor IPv6 forms that embed an IPv4 address in those.
 */
export function forbiddenAddress(
  address: string,
  policy: WebhookAddressPolicy = {},
): string | null {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  // A cloud's metadata service, whatever the policy allows.
  if (parsed.toNormalizedString() === METADATA_V6) return 'metadata service address';
  const range = parsed.range();
  if (range === 'unicast') return null;
  if (range === 'loopback' && policy.allowLoopback) return null;
  if (
    (range === 'private' || range === 'uniqueLocal' || range === 'carrierGradeNat') &&
    policy.allowPrivateNetworks
  ) {
    return null;
  }
  return `${range} address`;
}

/**
 * Checks an endpoint URL when it is registered: `https` (or `http` to loopback when loopback is
 * allowed), no credentials in it, a host that is not an address webhooks must not reach. A host
 * name is checked again at each delivery, against every address it resolves to.
 */
export function validateWebhookUrl(url: string, policy: WebhookAddressPolicy = {}): URL {
  const refuse = (why: string) =>
    new KeygateError('INVALID_REQUEST', { message: `url: ${why}`, reason: 'webhook_url' });
  if (typeof url !== 'string' || url.length > 2048)
    throw refuse('must be a URL of at most 2048 characters');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw refuse('must be an absolute URL');
  }
  if (parsed.username || parsed.password) throw refuse('must not hold credentials');
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopbackName = host === 'localhost' || host.endsWith('.localhost');
  const address = isIP(host) ? host : loopbackName ? '127.0.0.1' : null;
  const forbidden = address === null ? null : forbiddenAddress(address, policy);
  if (forbidden) throw refuse(`webhooks cannot be sent to a ${forbidden}`);
  const loopback = address !== null && ipaddr.parse(address).range() === 'loopback';
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
    throw refuse('must be https');
  }
  return parsed;
}

/** Delay before retry `attempt` (1 = the first retry): exponential, from `initialMs`, capped at `maxMs`, with jitter. */
export function webhookBackoff(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  // Up to a fifth less, so retries after an outage do not arrive all at once.
  return Math.round(base * (0.8 + Math.random() * 0.2));
}

/** An endpoint as the router shows it: never its secret, which is shown once, at creation. */
export interface WebhookEndpoint {
  id: string;
  ownerId: string | null;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  managedBy: 'config' | 'api';
  enabled: boolean;
  createdAt: Date;
}

export interface WebhookAttempt {
  attempt: number;
  at: Date;
  status: number | null;
  error: string | null;
  durationMs: number;
  succeeded: boolean;
}

/** One event to one endpoint, with its attempts. */
export interface WebhookDelivery {
  id: string;
  eventId: string;
  type: WebhookEventType;
  endpointId: string;
  url: string;
  keyId: string | null;
  state: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  history: WebhookAttempt[];
}

export interface NewWebhookEndpoint {
  url: string;
  events?: WebhookEventType[];
  description?: string | null;
}

/**
 * Per-owner webhook endpoints and their deliveries, as the management router reads and changes
 * them (`/v1/api-keys/webhooks`): `PostgresWebhooks` of `@keygate/postgres`.
 */
export interface WebhookRegistry {
  /** Registers an endpoint for `ownerId`; the answer holds its secret, this once. */
  createEndpoint(
    ownerId: string,
    input: NewWebhookEndpoint,
  ): Promise<WebhookEndpoint & { secret: string }>;
  /** The owner's endpoints, newest first; `null`: every endpoint, the operator's included. */
  listEndpoints(ownerId: string | null): Promise<WebhookEndpoint[]>;
  /** Removes an endpoint the owner registered; `false` when it has no such endpoint. */
  deleteEndpoint(ownerId: string | null, id: string): Promise<boolean>;
  /** The latest deliveries to the owner's endpoints (`null`: to every endpoint), newest first, with their attempts. */
  listDeliveries(
    ownerId: string | null,
    query: { endpointId?: string; keyId?: string; limit?: number },
  ): Promise<WebhookDelivery[]>;
  close?(): Promise<void>;
}
