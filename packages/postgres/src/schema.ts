import type {
  AuditAction,
  AuditOutcome,
  KeyEnvironment,
  KeyRestrictions,
  KeyType,
  RateLimitOverride,
} from '@keygate/core';
import { sql } from 'drizzle-orm';
import {
  check,
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
