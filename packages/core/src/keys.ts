import { randomBytes, randomUUID } from 'node:crypto';
import type { AuditLog } from './audit.js';
import type { VerificationCache } from './cache.js';
import { type DelegationBounds, delegationRefusal, type KeyReach } from './delegation.js';
import { KeygateError } from './errors.js';
import type { KeyFormat, KeyHasher } from './key-format.js';
import {
  type CreateKeyInput,
  createKeyInput,
  describeIssues,
  findUnsafeText,
  type RotateKeyInput,
  rotateKeyInput,
  type UpdateKeyInput,
  updateKeyInput,
} from './key-input.js';
import { withLastUse } from './last-used.js';
import type { RateLimitTiers } from './rate-limit.js';
import type {
  ApiKey,
  ApiKeyRecord,
  AuditAction,
  AuditEvent,
  AuditReader,
  AuditSink,
  InvalidationBus,
  KeyDetails,
  KeyPatch,
  KeyStore,
  ListKeysQuery,
} from './types.js';
import {
  fillBuckets,
  type KeyUsage,
  type UsageOptions,
  usageInput,
  usageWindow,
} from './usage-window.js';

/** Who performs an administrative action, for the audit trail. */
export interface Actor {
  /** Key id, session id, or e.g. `cli`. */
  id: string;
  /** The acting key's name and start, which its audit records show beside its id. */
  name?: string;
  start?: string;
  /** How the actor came: its key (`key`), a page session signed in with it (`page_session`), the app's session (`session`). */
  via?: 'key' | 'page_session' | 'session';
  /** When set, the action only reaches keys of this owner (others answer not found). */
  ownerId?: string;
  /**
   * When set, the action only reaches keys that reach no further than this (403 otherwise): the
   * bounds of the key or session behind a request. Absent (the CLI, the app's own code): unbounded.
   */
  bounds?: DelegationBounds;
  ip?: string | null;
  userAgent?: string | null;
  /** The request that asked for the action, when there was one. */
  method?: string | null;
  /** Its path, without the query string. */
  path?: string | null;
  requestId?: string | null;
}

export interface IssuedKey {
  key: ApiKey;
  /** The full secret: shown this once, never stored. */
  secret: string;
}

export interface KeyServiceDeps {
  store: KeyStore;
  format: KeyFormat;
  hasher: KeyHasher;
  cache: Pick<
    VerificationCache<{ readonly id: string }>,
    'invalidateKey' | 'invalidateDigest'
  > | null;
  invalidation: InvalidationBus;
  audit: AuditLog;
  /** Where `usage` reads from; `null`, or a reader without `usage`: every bucket reads zero. */
  auditReader: AuditReader | null;
  publicScopes: readonly string[];
  defaultOwnerId: string;
  /** The limits of each key type, to compare a key's effective limits with its caller's. */
  tiers: RateLimitTiers;
}

const SYSTEM: Actor = { id: 'system' };

/** A stored key without its digests: what a request carries as `principal.key`. */
export function keyDetails(record: ApiKeyRecord): KeyDetails {
  // Field by field: one object shape for every key, and no digest slips in with a new field.
  return {
    id: record.id,
    name: record.name,
    ownerId: record.ownerId,
    type: record.type,
    environment: record.environment,
    prefix: record.prefix,
    start: record.start,
    scopes: record.scopes,
    resources: record.resources,
    restrictions: record.restrictions,
    rateLimit: record.rateLimit,
    metadata: record.metadata,
    expiresAt: record.expiresAt,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    revokedAt: record.revokedAt,
    previousDigestExpiresAt: record.previousDigestExpiresAt,
    leak: record.leak,
  };
}

function parse<T>(
  schema: {
    safeParse(
      v: unknown,
    ): { success: true; data: T } | { success: false; error: import('zod').ZodError };
  },
  input: unknown,
): T {
  const unsafe = findUnsafeText(input);
  if (unsafe) throw invalid(unsafe);
  const result = schema.safeParse(input);
  if (!result.success) throw invalid(describeIssues(result.error));
  return result.data;
}

/** Issue, list, update, rotate and revoke keys: the programmatic API behind the router and the CLI. */
export class KeyService {
  readonly #deps: KeyServiceDeps;
  /** The store's own audit sink when it is one of ours: the store then writes each change's event with the change. */
  readonly #storeSink: AuditSink | undefined;

  constructor(deps: KeyServiceDeps) {
    this.#deps = deps;
    const sink = deps.store.auditSink;
    this.#storeSink = sink && deps.audit.writesTo(sink) ? sink : undefined;
  }

  async create(input: CreateKeyInput, actor: Actor = SYSTEM): Promise<IssuedKey> {
    const data = parse(createKeyInput, input);
    const ownerId = actor.ownerId ?? data.ownerId ?? this.#deps.defaultOwnerId;
    if (actor.ownerId && data.ownerId && data.ownerId !== actor.ownerId) {
      throw invalid('ownerId: cannot create keys for another owner');
    }
    if (data.type === 'public') this.#checkPublicScopes(data.scopes);
    this.#checkReach(actor, data);
    const { format, hasher, store } = this.#deps;
    const generated = format.generate(data.type, data.environment);
    const digest = hasher.digest(generated.secret);
    const id = `key_${randomId()}`;
    const scopes = dedupe(data.scopes);
    const event = this.#event('key.created', { id, start: generated.start, ownerId }, actor, {
      name: data.name,
      type: data.type,
      environment: data.environment,
      scopes,
    });
    const record = await store.create(
      {
        id,
        name: data.name,
        ownerId,
        type: data.type,
        environment: data.environment,
        digest,
        digestVersion: hasher.version,
        prefix: generated.prefix,
        start: generated.start,
        scopes,
        resources: data.resources === null ? null : dedupe(data.resources),
        restrictions: data.restrictions,
        rateLimit: data.rateLimit,
        metadata: data.metadata,
        expiresAt: data.expiresAt,
      },
      this.#withChange(event),
    );
    this.#deliver(event);
    this.#deps.cache?.invalidateDigest(digest);
    return { key: { ...keyDetails(record), lastUsedAt: null }, secret: generated.secret };
  }

  async list(query: ListKeysQuery = {}, actor?: Actor): Promise<ApiKey[]> {
    const ownerId = actor?.ownerId ?? query.ownerId;
    const limit = Math.min(Math.max(1, query.limit ?? 100), 1_000);
    const records = await this.#deps.store.list({ ...query, ownerId, limit });
    return this.#shown(records);
  }

  async get(id: string, actor?: Actor): Promise<ApiKey> {
    return this.#shownOne(await this.#find(id, actor));
  }

  /**
   * The key's requests over a window (default: the last 24 hours, hour by hour): served, failed
   * and rate limited per bucket, every bucket present, oldest first.
   */
  async usage(id: string, options: UsageOptions = {}, actor?: Actor): Promise<KeyUsage> {
    const window = usageWindow(parse(usageInput, options), new Date());
    const key = await this.#find(id, actor);
    const { range, interval, from, to } = window;
    const counted =
      (await this.#deps.auditReader?.usage?.({ keyId: key.id, from, to, interval })) ?? [];
    return { keyId: key.id, range, interval, from, to, buckets: fillBuckets(window, counted) };
  }

  async update(id: string, input: UpdateKeyInput, actor: Actor = SYSTEM): Promise<ApiKey> {
    const data = parse(updateKeyInput, input);
    const current = await this.#find(id, actor);
    if (current.revokedAt) throw invalid('the key is revoked');
    if (current.type === 'public' && data.scopes) this.#checkPublicScopes(data.scopes);
    // Neither a key beyond the caller's reach, nor one taken beyond it by the change.
    this.#checkReach(actor, current);
    this.#checkReach(actor, { ...current, ...data });
    const patch: KeyPatch = { ...data };
    if (data.scopes) patch.scopes = dedupe(data.scopes);
    if (data.resources) patch.resources = dedupe(data.resources);
    const event = this.#event('key.updated', current, actor, { fields: Object.keys(data) });
    const record = await this.#deps.store.update(id, patch, this.#withChange(event));
    if (!record) throw notFound();
    this.#deliver(event);
    await this.#invalidate(id);
    return this.#shownOne(record);
  }

  async rotate(id: string, input: RotateKeyInput = {}, actor: Actor = SYSTEM): Promise<IssuedKey> {
    const { gracePeriodSeconds } = parse(rotateKeyInput, input);
    const current = await this.#find(id, actor);
    if (current.revokedAt) throw invalid('the key is revoked');
    this.#checkReach(actor, current);
    const { format, hasher } = this.#deps;
    const generated = format.generate(current.type, current.environment);
    const event = this.#event('key.rotated', { ...current, start: generated.start }, actor, {
      gracePeriodSeconds,
      previousStart: current.start,
    });
    const record = await this.#deps.store.rotate(
      id,
      {
        digest: hasher.digest(generated.secret),
        digestVersion: hasher.version,
        start: generated.start,
        previousDigestExpiresAt:
          gracePeriodSeconds > 0 ? new Date(Date.now() + gracePeriodSeconds * 1000) : null,
      },
      this.#withChange(event),
    );
    if (!record) throw notFound();
    this.#deliver(event);
    await this.#invalidate(id);
    return { key: await this.#shownOne(record), secret: generated.secret };
  }

  async revoke(id: string, actor: Actor = SYSTEM): Promise<ApiKey> {
    const current = await this.#find(id, actor);
    this.#checkReach(actor, current);
    const event = this.#event('key.revoked', current, actor, null);
    const record = await this.#deps.store.revoke(id, event.at, this.#withChange(event));
    if (!record) throw notFound();
    this.#deliver(event);
    await this.#invalidate(id);
    return this.#shownOne(record);
  }

  /** Keys as callers see them: without digests, with their last use. */
  #shown(records: readonly ApiKeyRecord[]): Promise<ApiKey[]> {
    return withLastUse(records.map(keyDetails), this.#deps.auditReader, this.#deps.audit);
  }

  async #shownOne(record: ApiKeyRecord): Promise<ApiKey> {
    const [key] = await this.#shown([record]);
    return key!;
  }

  async #find(id: string, actor: Actor | undefined): Promise<ApiKeyRecord> {
    const record =
      typeof id === 'string' && id.length <= 200 ? await this.#deps.store.get(id) : null;
    // Another owner's key is indistinguishable from a missing one.
    if (!record || (actor?.ownerId !== undefined && record.ownerId !== actor.ownerId))
      throw notFound();
    return record;
  }

  /** Refuses (403) a key that would reach further than the actor: delegation never widens access. */
  #checkReach(actor: Actor, key: KeyReach): void {
    if (!actor.bounds) return;
    const refusal = delegationRefusal(actor.bounds, key, this.#deps.tiers);
    if (refusal) throw new KeygateError('FORBIDDEN', { message: refusal, reason: 'delegation' });
  }

  #checkPublicScopes(scopes: readonly string[]): void {
    const refused = scopes.filter((s) => !this.#deps.publicScopes.includes(s));
    if (refused.length > 0) {
      throw invalid(
        `scopes: a public key cannot hold ${refused.join(', ')} (allowed: ${this.#deps.publicScopes.join(', ')})`,
      );
    }
  }

  /** Drops cached verifications of key `id` here, and announces it to every instance. */
  async invalidate(id: string): Promise<void> {
    await this.#invalidate(id);
  }

  /** The store's own audit sink when the store writes each change's events with it; `undefined` otherwise. */
  get storeSink(): AuditSink | undefined {
    return this.#storeSink;
  }

  async #invalidate(id: string): Promise<void> {
    this.#deps.cache?.invalidateKey(id);
    await this.#deps.invalidation.publish(id);
  }

  #event(
    action: AuditAction,
    key: Pick<ApiKeyRecord, 'id' | 'start' | 'ownerId'>,
    actor: Actor,
    detail: Record<string, unknown> | null,
  ): AuditEvent {
    return {
      id: randomUUID(),
      at: new Date(),
      action,
      outcome: 'success',
      reason: null,
      keyId: key.id,
      keyStart: key.start,
      ownerId: key.ownerId,
      actor: actor.id,
      ip: actor.ip ?? null,
      userAgent: actor.userAgent ?? null,
      method: actor.method ?? null,
      path: actor.path ?? null,
      requestId: actor.requestId ?? null,
      detail: actor.via ? { ...detail, by: actorShown(actor) } : detail,
    };
  }

  /** The event for the store to write in the change's own transaction, when its audit sink is one of ours. */
  #withChange(event: AuditEvent): AuditEvent | undefined {
    return this.#storeSink ? event : undefined;
  }

  /** Queues a change's event for every sink, but the store's own, which has it already. */
  #deliver(event: AuditEvent): void {
    this.#deps.audit.record(event, { except: this.#storeSink });
  }
}

/** Who acted, as an audit record shows it: the key's name and start (never its secret), and how it came. */
function actorShown({ name, start, via }: Actor): Record<string, string> {
  return {
    ...(name === undefined ? {} : { name }),
    ...(start === undefined ? {} : { start }),
    ...(via === undefined ? {} : { via }),
  };
}

function notFound(): KeygateError {
  return new KeygateError('NOT_FOUND', { message: 'API key not found' });
}

function invalid(message: string): KeygateError {
  return new KeygateError('INVALID_REQUEST', { message });
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function randomId(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  let out = '';
  for (const byte of randomBytes(20)) out += alphabet[byte % 36];
  return out;
}
