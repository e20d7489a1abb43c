import { type AuditEvent, type WebhookEvent, webhookEventOf } from '@keygate/core';
import { sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import { webhookDeliveries, webhookEndpoints, webhookEvents } from './schema.js';

/** Whether some of `events` make webhook events (a revocation, a leak, a refusal for a rate limit). */
export function makesWebhookEvents(events: readonly AuditEvent[]): boolean {
  return events.some((event) => webhookEventOf(event) !== null);
}

/** The webhook events `events` make, into the outbox: with the statement that writes them, so both or neither are stored. */
export function enqueueWebhookEvents(
  db: KeygateDatabase,
  events: readonly AuditEvent[],
): Promise<void> {
  const messages: WebhookEvent[] = [];
  for (const event of events) {
    const message = webhookEventOf(event);
    if (message) messages.push(message);
  }
  return enqueueWebhooks(db, messages);
}

/**
 * Puts webhook events in the outbox, one statement: an event no enabled endpoint listens to is
 * not kept; one kept already (same id: a retried write, a second rate-limited request in the
 * hour) adds nothing; each event kept gets a pending delivery per endpoint that hears it (its
 * owner's and the operator's).
 */
export async function enqueueWebhooks(
  db: KeygateDatabase,
  messages: readonly WebhookEvent[],
): Promise<void> {
  const unique = [...new Map(messages.map((m) => [m.id, m])).values()];
  if (unique.length === 0) return;
  const column = (values: unknown[]) => sql`${sql.param(values)}`;
  await db.execute(sql`with incoming as (
      select * from unnest(${column(unique.map((m) => m.id))}::text[],
        ${column(unique.map((m) => m.type))}::text[],
        ${column(unique.map((m) => m.ownerId))}::text[],
        ${column(unique.map((m) => m.keyId))}::text[],
        ${column(unique.map((m) => JSON.stringify(m.payload)))}::jsonb[])
        as e(id, type, owner_id, key_id, payload)
    ), listening as (
      select e.*, ep.id as endpoint_id from incoming e
      join ${webhookEndpoints} ep on ep.enabled and e.type = any(ep.events)
        and (ep.owner_id is null or ep.owner_id = e.owner_id)
    ), stored as (
      insert into ${webhookEvents} (id, type, owner_id, key_id, payload)
      select distinct on (id) id, type, owner_id, key_id, payload from listening
      on conflict (id) do nothing
      returning id
    )
    insert into ${webhookDeliveries} (id, event_id, endpoint_id, owner_id)
    select 'whd_' || md5(l.id || ' ' || l.endpoint_id), l.id, l.endpoint_id, l.owner_id
    from listening l join stored s on s.id = l.id
    on conflict do nothing`);
}
