import type {
  AuditAction,
  AuditOutcome,
  KeyEnvironment,
  KeyLeak,
  KeyRestrictions,
  KeyType,
  RateLimitOverride,
} from '@keygate/core';
import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** API keys: everything but the secret, which is never stored. */
export const apiKeys = pgTable(
  'keygate_api_keys',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    ownerId: text('owner_id').notNull(),
    type: text('type').$type<KeyType>().notNull(),
    environment: text('environment').$type<KeyEnvironment>().notNull(),
    digest: text('digest').notNull(),
    digestVersion: integer('digest_version').notNull().default(0),
    previousDigest: text('previous_digest'),
    previousDigestExpiresAt: timestamptz('previous_digest_expires_at'),
    prefix: text('prefix').notNull(),
    start: text('start').notNull(),
    scopes: text('scopes').array().notNull().default(sql`'{}'::text[]`),
    /** `null` grants every resource of the owner. */
    resources: jsonb('resources').$type<string[]>(),
    restrictions: jsonb('restrictions').$type<KeyRestrictions>(),
    rateLimit: jsonb('rate_limit').$type<RateLimitOverride>(),
    metadata: jsonb('metadata').$type<Record<string, unknown>>(),
    expiresAt: timestamptz('expires_at'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
    revokedAt: timestamptz('revoked_at'),
    /** Set when the key was reported leaked: when, where, and what was done. */
    leak: jsonb('leak').$type<KeyLeak>(),
  },
  (table) => [
    uniqueIndex('keygate_api_keys_digest_key').on(table.digest),
    // Partial: only keys inside a rotation grace period carry a previous digest.
    index('keygate_api_keys_previous_digest_idx')
      .on(table.previousDigest)
      .where(sql`${table.previousDigest} is not null`),
    index('keygate_api_keys_owner_created_idx').on(table.ownerId, table.createdAt, table.id),
    index('keygate_api_keys_created_idx').on(table.createdAt, table.id),
    check('keygate_api_keys_type_check', sql`${table.type} in ('secret', 'public')`),
    check('keygate_api_keys_environment_check', sql`${table.environment} in ('live', 'test')`),
  ],
);

/** The audit trail: who used or changed which key, when, from where, and the outcome. */
export const auditEvents = pgTable(
  'keygate_audit_events',
  {
    id: text('id').primaryKey(),
    at: timestamptz('at').notNull(),
    action: text('action').$type<AuditAction>().notNull(),
    outcome: text('outcome').$type<AuditOutcome>().notNull(),
    reason: text('reason'),
    keyId: text('key_id'),
    keyStart: text('key_start'),
    ownerId: text('owner_id'),
    actor: text('actor'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    method: text('method'),
    path: text('path'),
    requestId: text('request_id'),
    detail: jsonb('detail').$type<Record<string, unknown>>(),
  },
  (table) => [
    index('keygate_audit_events_key_at_idx').on(table.keyId, table.at.desc(), table.id.desc()),
    index('keygate_audit_events_owner_at_idx').on(table.ownerId, table.at.desc(), table.id.desc()),
    index('keygate_audit_events_at_idx').on(table.at.desc(), table.id.desc()),
  ],
);

/**
 * Successful uses, counted per minute: one row per key, client IP, user agent, method, path and
 * minute, however many requests it stands for, with its successful authentications and passed
 * checks. Failures, denials and key changes are `keygate_audit_events` rows, one each.
 */
export const usageCounts = pgTable(
  'keygate_usage_counts',
  {
    keyId: text('key_id').notNull(),
    /** Start of the minute. */
    minute: timestamptz('minute').notNull(),
    /** md5 of the row's key start, owner, IP, user agent, method and path: the key stays small however long they are. */
    dimensions: text('dimensions').notNull(),
    keyStart: text('key_start'),
    ownerId: text('owner_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    method: text('method'),
    path: text('path'),
    /** Successful authentications. */
    authenticated: integer('authenticated').notNull(),
    /** Scope checks passed. */
    scopeChecks: integer('scope_checks').notNull(),
    /** Resource checks passed. */
    resourceChecks: integer('resource_checks').notNull(),
    firstSeen: timestamptz('first_seen').notNull(),
    lastSeen: timestamptz('last_seen').notNull(),
  },
  (table) => [
    primaryKey({
      name: 'keygate_usage_counts_pkey',
      columns: [table.keyId, table.minute, table.dimensions],
    }),
  ],
);

/**
 * Usage batches already added to `keygate_usage_counts`: a batch retried after a lost reply is
 * skipped, so counts never add twice. Kept for a day.
 */
export const usageBatches = pgTable(
  'keygate_usage_batches',
  {
    id: text('id').primaryKey(),
    at: timestamptz('at').notNull().defaultNow(),
  },
  (table) => [index('keygate_usage_batches_at_idx').on(table.at)],
);

/**
 * Reports that a key leaked, one per key and reported place (fingerprint of source and URL): a
 * report repeated for the same place finds its row and changes nothing.
 */
export const leakReports = pgTable(
  'keygate_leak_reports',
  {
    keyId: text('key_id')
      .notNull()
      .references(() => apiKeys.id, { onDelete: 'cascade' }),
    fingerprint: text('fingerprint').notNull(),
    url: text('url'),
    source: text('source').notNull(),
    reportedAt: timestamptz('reported_at').notNull(),
  },
  (table) => [
    primaryKey({ name: 'keygate_leak_reports_pkey', columns: [table.keyId, table.fingerprint] }),
  ],
);

/**
 * Where owners hear of their keys' events: an owner's endpoints (`owner_id`), or the operator's
 * (`owner_id` null: every owner's events), each with the secret its deliveries are signed with.
 */
export const webhookEndpoints = pgTable(
  'keygate_webhook_endpoints',
  {
    id: text('id').primaryKey(),
    /** `null`: an operator's endpoint, which hears every owner's events. */
    ownerId: text('owner_id'),
    url: text('url').notNull(),
    /** `whsec_` and the base64 HMAC key (Standard Webhooks). */
    secret: text('secret').notNull(),
    /** The event types it hears. */
    events: text('events').array().notNull(),
    description: text('description'),
    /** `config` (the operator's options, kept in step by the delivery worker) or `api` (the router). */
    managedBy: text('managed_by').notNull(),
    /** An operator endpoint no longer in the options stops hearing events; its deliveries stay visible. */
    enabled: boolean('enabled').notNull().default(true),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (table) => [
    index('keygate_webhook_endpoints_owner_idx').on(table.ownerId),
    check(
      'keygate_webhook_endpoints_managed_by_check',
      sql`${table.managedBy} in ('config', 'api')`,
    ),
  ],
);

/**
 * The outbox: each webhook event, written in the transaction of what caused it (a key change, its
 * audit event), so an event is never lost between the change and its delivery. Ids are the
 * Standard Webhooks `webhook-id`; deterministic ids make an event at most once (one
 * `key.rate_limited` per key and hour, one `key.expiring` per key, expiry and warning).
 */
export const webhookEvents = pgTable(
  'keygate_webhook_events',
  {
    id: text('id').primaryKey(),
    type: text('type').notNull(),
    ownerId: text('owner_id'),
    keyId: text('key_id'),
    /** The JSON body delivered: `{type, timestamp, data}`. */
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (table) => [index('keygate_webhook_events_created_idx').on(table.createdAt)],
);

/** One event to one endpoint: its state, attempts and next attempt. */
export const webhookDeliveries = pgTable(
  'keygate_webhook_deliveries',
  {
    id: text('id').primaryKey(),
    eventId: text('event_id').notNull(),
    endpointId: text('endpoint_id').notNull(),
    ownerId: text('owner_id'),
    /** `pending` (to send or retry), `succeeded`, or `failed` (attempts used up). */
    state: text('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamptz('next_attempt_at').notNull().defaultNow(),
    /** While an attempt is in flight: until when the worker that took it holds it. */
    leasedUntil: timestamptz('leased_until'),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    deliveredAt: timestamptz('delivered_at'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex('keygate_webhook_deliveries_event_endpoint_key').on(
      table.eventId,
      table.endpointId,
    ),
    index('keygate_webhook_deliveries_due_idx')
      .on(table.nextAttemptAt)
      .where(sql`${table.state} = 'pending'`),
    index('keygate_webhook_deliveries_owner_created_idx').on(table.ownerId, table.createdAt),
    foreignKey({
      name: 'keygate_webhook_deliveries_event_fk',
      columns: [table.eventId],
      foreignColumns: [webhookEvents.id],
    }).onDelete('cascade'),
    foreignKey({
      name: 'keygate_webhook_deliveries_endpoint_fk',
      columns: [table.endpointId],
      foreignColumns: [webhookEndpoints.id],
    }).onDelete('cascade'),
    check(
      'keygate_webhook_deliveries_state_check',
      sql`${table.state} in ('pending', 'succeeded', 'failed')`,
    ),
  ],
);

/** Every attempt of a delivery, with what the endpoint answered. */
export const webhookAttempts = pgTable(
  'keygate_webhook_attempts',
  {
    deliveryId: text('delivery_id')
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    at: timestamptz('at').notNull(),
    /** The HTTP status answered; `null` when none came (refused address, timeout, network). */
    status: integer('status'),
    error: text('error'),
    durationMs: integer('duration_ms').notNull(),
    /** Whether this attempt is the one that counted as the delivery (2xx while it held the lease). */
    succeeded: boolean('succeeded').notNull(),
  },
  (table) => [
    primaryKey({
      name: 'keygate_webhook_attempts_pkey',
      columns: [table.deliveryId, table.attempt],
    }),
  ],
);

/** Which instance runs the delivery worker, until when: one at a time across instances. */
export const webhookWorker = pgTable('keygate_webhook_worker', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  leaseUntil: timestamptz('lease_until').notNull(),
});

/**
 * The key-management page's sessions, shared by every instance: the key each was signed in with
 * and the digest of the secret used (never the secret), and the hash of its cookie's token
 * (never the token). A session ends at `expires_at`, or unused at `active_until`; ended rows are
 * purged.
 */
export const pageSessions = pgTable(
  'keygate_page_sessions',
  {
    tokenHash: text('token_hash').primaryKey(),
    keyId: text('key_id').notNull(),
    keyDigest: text('key_digest').notNull(),
    ownerId: text('owner_id').notNull(),
    origin: text('origin').notNull(),
    createdAt: timestamptz('created_at').notNull(),
    expiresAt: timestamptz('expires_at').notNull(),
    /** The idle end, moved on by use; never past `expires_at`, so purging by it alone is enough. */
    activeUntil: timestamptz('active_until').notNull(),
  },
  (table) => [
    index('keygate_page_sessions_key_created_idx').on(table.keyId, table.createdAt),
    index('keygate_page_sessions_active_until_idx').on(table.activeUntil),
  ],
);
