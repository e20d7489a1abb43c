import { createHash, randomBytes } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import {
  expiringEvent,
  forbiddenAddress,
  isWebhookSecret,
  KeygateConfigError,
  KeygateError,
  type NewWebhookEndpoint,
  newWebhookSecret,
  signWebhook,
  validateWebhookUrl,
  WEBHOOK_EVENT_TYPES,
  type WebhookAddressPolicy,
  type WebhookAttempt,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookEventType,
  type WebhookRegistry,
  webhookBackoff,
} from '@keygate/core';
import { and, desc, eq, inArray, isNull, notInArray, sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import {
  apiKeys,
  webhookAttempts,
  webhookDeliveries,
  webhookEndpoints,
  webhookEvents,
  webhookWorker,
} from './schema.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS } from './store-error.js';
import { enqueueWebhooks } from './webhook-outbox.js';

/** An endpoint of the operator's, in the options: it hears every owner's events. */
export interface OperatorWebhookEndpoint {
  url: string;
  /** `whsec_` and base64 (at least 16 bytes), as Standard Webhooks secrets are. */
  secret: string;
  /** Default: every event type. */
  events?: WebhookEventType[];
  description?: string;
}

export interface PostgresWebhooksOptions extends WebhookAddressPolicy {
  /** The operator's endpoints, which hear every owner's events. Default: none. */
  endpoints?: OperatorWebhookEndpoint[];
  /** Longest an attempt waits for the endpoint's answer, in ms. Default `10000`. */
  timeoutMs?: number;
  /** Attempts before a delivery is given up (`failed`). Default `8`. */
  maxAttempts?: number;
  /** Delay before the first retry, in ms; it doubles for each next one. Default `5000`. */
  initialBackoffMs?: number;
  /** Longest delay between retries, in ms. Default `36000000` (10 hours). */
  maxBackoffMs?: number;
  /** How often the worker looks for deliveries due, in ms. Default `1000`. */
  pollIntervalMs?: number;
  /** How long the worker's turn lasts unless it renews it (it does, every third of it), in ms. Default `30000`. */
  leaseMs?: number;
  /** Endpoints an owner may register. Default `10`. */
  maxEndpointsPerOwner?: number;
  /** Days finished deliveries and their events are kept. Default `30`. */
  retentionDays?: number;
  /** Names this instance in the worker's lease. Default: random. */
  instanceId?: string;
  logger?: Pick<Console, 'warn' | 'error'>;
}

/** Deliveries taken at once by the worker. */
const BATCH = 10;
/** How often the worker looks for keys about to expire, in ms. */
const EXPIRY_SCAN_MS = 60_000;
const PURGE_MS = 3_600_000;
const DAY_MS = 86_400_000;
const WORKER = 'deliveries';

interface Claimed {
  id: string;
  eventId: string;
  attempts: number;
  url: string;
  secret: string;
  payload: Record<string, unknown>;
}

/**
 * Webhooks from a Postgres outbox: owners' endpoints (the router's `/webhooks` routes) and the
 * operator's (options), and the delivery worker. Events enter the outbox in the transaction of
 * the change that makes them (see `PostgresAuditSink`); `start()` runs the worker, which at most
 * one instance runs at a time (a lease row, renewed while it runs, taken over when it lapses:
 * an instance that dies hands over within `leaseMs`). Each attempt is signed per Standard
 * Webhooks and holds its delivery for `timeoutMs` and a margin, so a delivery whose worker died
 * mid-attempt is retried by the next, and recorded delivered once.
 */
export class PostgresWebhooks implements WebhookRegistry {
  readonly #db: KeygateDatabase;
  readonly #options: Required<
    Omit<PostgresWebhooksOptions, 'endpoints' | 'logger' | 'allowLoopback' | 'allowPrivateNetworks'>
  >;
  readonly #policy: WebhookAddressPolicy;
  readonly #endpoints: OperatorWebhookEndpoint[];
  readonly #logger: Pick<Console, 'warn' | 'error'>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  #leading = false;
  #lastExpiryScan = 0;
  #lastPurge = 0;

  constructor(db: KeygateDatabase, options: PostgresWebhooksOptions = {}) {
    this.#db = db;
    this.#policy = {
      allowLoopback: options.allowLoopback ?? false,
      allowPrivateNetworks: options.allowPrivateNetworks ?? false,
    };
    this.#logger = options.logger ?? console;
    this.#options = {
      timeoutMs: positive(options.timeoutMs ?? 10_000, 'timeoutMs'),
      maxAttempts: positive(options.maxAttempts ?? 8, 'maxAttempts'),
      initialBackoffMs: positive(options.initialBackoffMs ?? 5_000, 'initialBackoffMs'),
      maxBackoffMs: positive(options.maxBackoffMs ?? 36_000_000, 'maxBackoffMs'),
      pollIntervalMs: positive(options.pollIntervalMs ?? 1_000, 'pollIntervalMs'),
      leaseMs: positive(options.leaseMs ?? 30_000, 'leaseMs'),
      maxEndpointsPerOwner: positive(options.maxEndpointsPerOwner ?? 10, 'maxEndpointsPerOwner'),
      retentionDays: positive(options.retentionDays ?? 30, 'retentionDays'),
      instanceId: options.instanceId ?? `instance_${randomBytes(8).toString('hex')}`,
    };
    this.#endpoints = (options.endpoints ?? []).map((endpoint) => {
      try {
        validateWebhookUrl(endpoint.url, this.#policy);
      } catch (error) {
        throw new KeygateConfigError(
          'INVALID_OPTION',
          `webhooks.endpoints: ${(error as Error).message}`,
        );
      }
      if (!isWebhookSecret(endpoint.secret)) {
        throw new KeygateConfigError(
          'INVALID_OPTION',
          'webhooks.endpoints: each secret is whsec_ and base64 of at least 16 bytes',
        );
      }
      return { ...endpoint, events: eventTypes(endpoint.events, 'webhooks.endpoints') };
    });
  }

  /**
   * Saves the operator's endpoints (so events are kept for them from now on) and starts the
   * worker: every `pollIntervalMs`, it takes the worker's turn if it is free, then delivers what is
   * due, raises `key.expiring` events and purges old deliveries.
   */
  async start(): Promise<void> {
    await this.#saveOperatorEndpoints();
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Stops the worker (an attempt in flight finishes) and gives up its turn. */
  async close(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    if (this.#leading) {
      this.#leading = false;
      await this.#db
        .delete(webhookWorker)
        .where(
          and(eq(webhookWorker.name, WORKER), eq(webhookWorker.holder, this.#options.instanceId)),
        )
        .catch(() => {});
    }
  }

  /** Runs one pass of the worker now (what the timer does): for tests and for a cron job without `start()`. */
  async runOnce(): Promise<{ leading: boolean; delivered: number }> {
    if (!(await this.#lead())) return { leading: false, delivered: 0 };
    const now = Date.now();
    if (now - this.#lastExpiryScan >= EXPIRY_SCAN_MS) {
      this.#lastExpiryScan = now;
      await this.#raiseExpiring(new Date(now));
    }
    if (now - this.#lastPurge >= PURGE_MS) {
      this.#lastPurge = now;
      await this.#purge();
    }
    let delivered = 0;
    for (;;) {
      const claimed = await this.#claim();
      await Promise.all(claimed.map((delivery) => this.#deliver(delivery)));
      delivered += claimed.length;
      if (claimed.length < BATCH || this.#stopped || !(await this.#lead())) break;
    }
    return { leading: true, delivered };
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.runOnce()
        .then(
          () => {},
          (error: unknown) => this.#logger.warn('[keygate] webhook worker:', error),
        )
        .finally(() => {
          this.#running = undefined;
          this.#schedule(this.#options.pollIntervalMs);
        });
    }, delayMs);
    this.#timer.unref?.();
  }

  /** Takes or renews the worker's turn: `true` when this instance holds it. */
  async #lead(): Promise<boolean> {
    const { instanceId, leaseMs } = this.#options;
    const rows = await this.#db.execute(sql`insert into ${webhookWorker} (name, holder, lease_until)
      values (${WORKER}, ${instanceId}, now() + ${leaseMs} * interval '1 millisecond')
      on conflict (name) do update set holder = excluded.holder, lease_until = excluded.lease_until
      where ${webhookWorker.holder} = excluded.holder or ${webhookWorker.leaseUntil} < now()
      returning holder`);
    this.#leading = rowsOf(rows).length === 1;
    return this.#leading;
  }

  async #saveOperatorEndpoints(): Promise<void> {
    await attempt('save webhook endpoints', DEFAULT_CALL_TIMEOUT_MS, () =>
      this.#db.transaction(async (tx) => {
        const ids: string[] = [];
        for (const endpoint of this.#endpoints) {
          const id = `whe_op_${createHash('sha256').update(endpoint.url).digest('hex').slice(0, 24)}`;
          ids.push(id);
          const values = {
            url: endpoint.url,
            secret: endpoint.secret,
            events: endpoint.events!,
            description: endpoint.description ?? null,
            enabled: true,
          };
          await tx
            .insert(webhookEndpoints)
            .values({ id, ownerId: null, managedBy: 'config', ...values })
            .onConflictDoUpdate({ target: webhookEndpoints.id, set: values });
        }
        await tx
          .update(webhookEndpoints)
          .set({ enabled: false })
          .where(
            and(
              eq(webhookEndpoints.managedBy, 'config'),
              ids.length > 0 ? notInArray(webhookEndpoints.id, ids) : undefined,
            ),
          );
      }),
    );
  }

  /** Takes the deliveries due (and not held by an attempt in flight), holding each for one attempt. */
  async #claim(): Promise<Claimed[]> {
    const holdMs = this.#options.timeoutMs + 5_000;
    const result = await this.#db.execute(sql`with due as (
        select d.id from ${webhookDeliveries} d
        join ${webhookEndpoints} ep on ep.id = d.endpoint_id and ep.enabled
        where d.state = 'pending' and d.next_attempt_at <= now()
          and (d.leased_until is null or d.leased_until <= now())
        order by d.next_attempt_at limit ${BATCH}
        for update of d skip locked
      )
      update ${webhookDeliveries} d set attempts = d.attempts + 1,
        leased_until = now() + ${holdMs} * interval '1 millisecond'
      from due, ${webhookEvents} e, ${webhookEndpoints} ep
      where d.id = due.id and e.id = d.event_id and ep.id = d.endpoint_id
      returning d.id, d.event_id, d.attempts, ep.url, ep.secret, e.payload`);
    return rowsOf<{
      id: string;
      event_id: string;
      attempts: number;
      url: string;
      secret: string;
      payload: Record<string, unknown> | string;
    }>(result).map((row) => ({
      id: row.id,
      eventId: row.event_id,
      attempts: row.attempts,
      url: row.url,
      secret: row.secret,
      payload: typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload,
    }));
  }

  /** One signed attempt, and its outcome recorded: delivered (once), retried later, or given up. */
  async #deliver(delivery: Claimed): Promise<void> {
    const body = JSON.stringify(delivery.payload);
    const started = Date.now();
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'keygate-webhooks',
      ...signWebhook(delivery.secret, delivery.eventId, Math.floor(started / 1000), body),
    };
    const answer = await post(delivery.url, body, headers, this.#options.timeoutMs, this.#policy);
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 300;
    const { maxAttempts, initialBackoffMs, maxBackoffMs } = this.#options;
    const retryInMs = webhookBackoff(delivery.attempts, initialBackoffMs, maxBackoffMs);
    const error = ok ? null : (answer.error ?? `HTTP ${answer.status}`);
    await this.#db.transaction(async (tx) => {
      // Only while this attempt holds the delivery: a worker that lost it records nothing as delivered.
      const held = and(
        eq(webhookDeliveries.id, delivery.id),
        eq(webhookDeliveries.attempts, delivery.attempts),
        eq(webhookDeliveries.state, 'pending'),
      );
      const updated = await tx
        .update(webhookDeliveries)
        .set(
          ok
            ? {
                state: 'succeeded',
                deliveredAt: sql`now()`,
                leasedUntil: null,
                lastStatus: answer.status,
                lastError: null,
              }
            : delivery.attempts >= maxAttempts
              ? { state: 'failed', leasedUntil: null, lastStatus: answer.status, lastError: error }
              : {
                  nextAttemptAt: sql`now() + ${retryInMs} * interval '1 millisecond'`,
                  leasedUntil: null,
                  lastStatus: answer.status,
                  lastError: error,
                },
        )
        .where(held)
        .returning({ id: webhookDeliveries.id });
      await tx
        .insert(webhookAttempts)
        .values({
          deliveryId: delivery.id,
          attempt: delivery.attempts,
          at: new Date(started),
          status: answer.status,
          error,
          durationMs: Date.now() - started,
          succeeded: ok && updated.length === 1,
        })
        .onConflictDoNothing();
    });
  }

  /** `key.expiring` for keys that expire within 7 days and within 1 day: once each, through the outbox. */
  async #raiseExpiring(now: Date): Promise<void> {
    for (const [within, days] of [
      ['7d', 7],
      ['1d', 1],
    ] as const) {
      const keys = await this.#db
        .select({
          id: apiKeys.id,
          start: apiKeys.start,
          ownerId: apiKeys.ownerId,
          expiresAt: apiKeys.expiresAt,
        })
        .from(apiKeys)
        .where(
          and(
            isNull(apiKeys.revokedAt),
            sql`${apiKeys.expiresAt} > ${now.toISOString()}::timestamptz`,
            sql`${apiKeys.expiresAt} <= ${new Date(now.getTime() + days * DAY_MS).toISOString()}::timestamptz`,
          ),
        )
        .limit(1_000);
      await enqueueWebhooks(
        this.#db,
        keys.map((key) => expiringEvent({ ...key, expiresAt: key.expiresAt! }, within, now)),
      );
    }
  }

  /** Drops finished deliveries, and events with none left pending, past the retention. */
  async #purge(): Promise<void> {
    const cutoff = sql`now() - ${this.#options.retentionDays} * interval '1 day'`;
    await this.#db.execute(sql`delete from ${webhookEvents} e where e.created_at < ${cutoff}
      and not exists (select from ${webhookDeliveries} d where d.event_id = e.id and d.state = 'pending')`);
  }

  async createEndpoint(
    ownerId: string,
    input: NewWebhookEndpoint,
  ): Promise<WebhookEndpoint & { secret: string }> {
    const url = validateWebhookUrl(input?.url, this.#policy).href;
    const events = eventTypes(input.events, 'events', true);
    const description = input.description ?? null;
    if (description !== null && (typeof description !== 'string' || description.length > 200)) {
      throw invalid('description: at most 200 characters');
    }
    return attempt('create webhook endpoint', DEFAULT_CALL_TIMEOUT_MS, async () => {
      const [{ count }] = (await this.#db
        .select({ count: sql<number>`count(*)::int` })
        .from(webhookEndpoints)
        .where(eq(webhookEndpoints.ownerId, ownerId))) as [{ count: number }];
      if (count >= this.#options.maxEndpointsPerOwner) {
        throw invalid(
          `an owner may have at most ${this.#options.maxEndpointsPerOwner} webhook endpoints`,
        );
      }
      const secret = newWebhookSecret();
      const [row] = await this.#db
        .insert(webhookEndpoints)
        .values({
          id: `whe_${randomBytes(12).toString('hex')}`,
          ownerId,
          url,
          secret,
          events,
          description,
          managedBy: 'api',
        })
        .returning();
      return { ...shown(row!), secret };
    });
  }

  listEndpoints(ownerId: string | null): Promise<WebhookEndpoint[]> {
    return attempt('list webhook endpoints', DEFAULT_CALL_TIMEOUT_MS, async () => {
      const rows = await this.#db
        .select()
        .from(webhookEndpoints)
        .where(ownerId === null ? undefined : eq(webhookEndpoints.ownerId, ownerId))
        .orderBy(desc(webhookEndpoints.createdAt));
      return rows.map(shown);
    });
  }

  deleteEndpoint(ownerId: string | null, id: string): Promise<boolean> {
    return attempt('delete webhook endpoint', DEFAULT_CALL_TIMEOUT_MS, async () => {
      const rows = await this.#db
        .delete(webhookEndpoints)
        .where(
          and(
            eq(webhookEndpoints.id, id),
            eq(webhookEndpoints.managedBy, 'api'),
            ownerId === null ? undefined : eq(webhookEndpoints.ownerId, ownerId),
          ),
        )
        .returning({ id: webhookEndpoints.id });
      return rows.length === 1;
    });
  }

  listDeliveries(
    ownerId: string | null,
    query: { endpointId?: string; keyId?: string; limit?: number } = {},
  ): Promise<WebhookDelivery[]> {
    const limit = Math.min(Math.max(1, query.limit ?? 50), 100);
    return attempt('list webhook deliveries', DEFAULT_CALL_TIMEOUT_MS, async () => {
      const rows = await this.#db
        .select({
          id: webhookDeliveries.id,
          eventId: webhookDeliveries.eventId,
          type: webhookEvents.type,
          endpointId: webhookDeliveries.endpointId,
          url: webhookEndpoints.url,
          keyId: webhookEvents.keyId,
          state: webhookDeliveries.state,
          attempts: webhookDeliveries.attempts,
          nextAttemptAt: webhookDeliveries.nextAttemptAt,
          deliveredAt: webhookDeliveries.deliveredAt,
          lastStatus: webhookDeliveries.lastStatus,
          lastError: webhookDeliveries.lastError,
          createdAt: webhookDeliveries.createdAt,
        })
        .from(webhookDeliveries)
        .innerJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
        .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
        .where(
          and(
            ownerId === null ? undefined : eq(webhookEndpoints.ownerId, ownerId),
            query.endpointId === undefined
              ? undefined
              : eq(webhookDeliveries.endpointId, query.endpointId),
            query.keyId === undefined ? undefined : eq(webhookEvents.keyId, query.keyId),
          ),
        )
        .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
        .limit(limit);
      const history = new Map<string, WebhookAttempt[]>();
      if (rows.length > 0) {
        const attempts = await this.#db
          .select()
          .from(webhookAttempts)
          .where(
            inArray(
              webhookAttempts.deliveryId,
              rows.map((row) => row.id),
            ),
          )
          .orderBy(webhookAttempts.attempt);
        for (const { deliveryId, ...item } of attempts) {
          history.set(deliveryId, [...(history.get(deliveryId) ?? []), item]);
        }
      }
      return rows.map((row) => ({
        ...row,
        type: row.type as WebhookEventType,
        state: row.state as WebhookDelivery['state'],
        nextAttemptAt: row.state === 'pending' ? row.nextAttemptAt : null,
        history: history.get(row.id) ?? [],
      }));
    });
  }
}

function shown(row: typeof webhookEndpoints.$inferSelect): WebhookEndpoint {
  return {
    id: row.id,
    ownerId: row.ownerId,
    url: row.url,
    events: row.events as WebhookEventType[],
    description: row.description,
    managedBy: row.managedBy as WebhookEndpoint['managedBy'],
    enabled: row.enabled,
    createdAt: row.createdAt,
  };
}

function eventTypes(events: unknown, name: string, fromRequest = false): WebhookEventType[] {
  if (events === undefined) return [...WEBHOOK_EVENT_TYPES];
  if (
    !Array.isArray(events) ||
    events.length === 0 ||
    events.some((e) => !WEBHOOK_EVENT_TYPES.includes(e as WebhookEventType))
  ) {
    const message = `${name}: a non-empty list of ${WEBHOOK_EVENT_TYPES.join(', ')}`;
    throw fromRequest ? invalid(message) : new KeygateConfigError('INVALID_OPTION', message);
  }
  return [...new Set(events as WebhookEventType[])];
}

function invalid(message: string): KeygateError {
  return new KeygateError('INVALID_REQUEST', { message });
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new KeygateConfigError('INVALID_OPTION', `webhooks.${name} must be a positive number`);
  }
  return value;
}

/** The rows of a raw statement: an array from postgres-js, `{ rows }` from PGlite. */
function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows: T[] }).rows ?? []);
}

/**
 * Resolves a host and refuses it when any address it resolves to is one webhooks must not reach:
 * the connection then uses exactly the addresses checked (a second resolution could answer
 * differently: DNS rebinding).
 */
function guardedLookup(policy: WebhookAddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 4);
      const refused = addresses.find((a) => forbiddenAddress(a.address, policy) !== null);
      if (refused) {
        const why = forbiddenAddress(refused.address, policy);
        return callback(
          Object.assign(new Error(`${hostname} resolves to a ${why}`), { code: 'EADDRNOTAVAIL' }),
          '',
          4,
        );
      }
      if ((options as { all?: boolean }).all) {
        return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      }
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/** One POST, no redirects followed, the answer's body discarded: its status, or why there is none. */
function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  policy: WebhookAddressPolicy,
): Promise<{ status: number | null; error: string | null }> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = validateWebhookUrl(url, policy);
    } catch (error) {
      resolve({ status: null, error: (error as Error).message });
      return;
    }
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const forbidden = forbiddenAddress(host, policy);
      if (forbidden) {
        resolve({ status: null, error: `refused: a ${forbidden}` });
        return;
      }
    }
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(target, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: guardedLookup(policy),
      timeout: timeoutMs,
    });
    const timer = setTimeout(
      () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    request.once('response', (response) => {
      clearTimeout(timer);
      response.resume();
      resolve({ status: response.statusCode ?? null, error: null });
    });
    request.once('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.once('error', (error) => {
      clearTimeout(timer);
      resolve({ status: null, error: error.message.slice(0, 500) });
    });
    request.end(body);
  });
}
