import { createHash, createPublicKey, type KeyObject, randomUUID, verify } from 'node:crypto';
import type { AuditLog } from './audit.js';
import { KeygateConfigError } from './errors.js';
import type { KeyFormat, KeyHasher, ParsedKey } from './key-format.js';
import { findKeys } from './key-scan.js';
import type { Actor } from './keys.js';
import type {
  ApiKeyRecord,
  AuditEvent,
  AuditReader,
  AuditSink,
  Containment,
  KeyEnvironment,
  KeyLeak,
  KeyStore,
  LeakChange,
} from './types.js';

export interface LeakOptions {
  /**
   * What a report does to a secret key, per environment: `revoke` it, `quarantine` it (it keeps
   * working only from the IPs it was used from in the last `quarantineDays` days, and only for
   * its read scopes), or only `notify` (an audit event and a `key.leaked` webhook). Public keys
   * are never contained: they are meant to be seen. Default `revoke` for both environments.
   */
  containment?: Partial<Record<KeyEnvironment, Containment>>;
  /** Days of use whose client IPs a quarantined key keeps working from. Default `7`. */
  quarantineDays?: number;
  /** Which scopes a quarantined key keeps. Default: those that start with `read:`. */
  isReadScope?: (scope: string) => boolean;
  /**
   * GitHub's secret-scanning public keys (`key_identifier` and PEM `key` of
   * `https://api.github.com/meta/public_keys/secret_scanning`, see `fetchGitHubSigningKeys`), to
   * accept the reports GitHub signs. Default: none (a signed report is refused with 401).
   */
  githubKeys?: readonly GitHubSigningKey[];
}

/** A public key GitHub signs secret-scanning reports with (ECDSA P-256, SHA-256). */
export interface GitHubSigningKey {
  /** Its `key_identifier`, as `Github-Public-Key-Identifier` names it. */
  id: string;
  /** The public key, PEM (SPKI). */
  key: string;
}

/** Leak handling with its defaults applied. */
export interface LeakPolicy {
  containment: Record<KeyEnvironment, Containment>;
  quarantineDays: number;
  isReadScope: (scope: string) => boolean;
  /** GitHub's keys by identifier, parsed once. */
  githubKeys: ReadonlyMap<string, KeyObject>;
}

const CONTAINMENTS: readonly Containment[] = ['revoke', 'quarantine', 'notify'];
/** Most client IPs a quarantined key keeps. */
const MAX_QUARANTINE_IPS = 100;

export function resolveLeakPolicy(options: LeakOptions = {}): LeakPolicy {
  const containment = { live: 'revoke', test: 'revoke', ...options.containment } as Record<
    KeyEnvironment,
    Containment
  >;
  for (const [environment, value] of Object.entries(containment)) {
    if (!['live', 'test'].includes(environment) || !CONTAINMENTS.includes(value)) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `leaks.containment: give live and/or test as one of ${CONTAINMENTS.join(', ')} (got ${environment}: ${JSON.stringify(value)})`,
      );
    }
  }
  const quarantineDays = options.quarantineDays ?? 7;
  if (!Number.isInteger(quarantineDays) || quarantineDays < 1 || quarantineDays > 90) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `leaks.quarantineDays must be a whole number of days from 1 to 90 (got ${quarantineDays})`,
    );
  }
  return {
    containment,
    quarantineDays,
    isReadScope: options.isReadScope ?? ((scope) => scope.startsWith('read:')),
    githubKeys: new Map((options.githubKeys ?? []).map((k) => [k.id, signingKey(k)])),
  };
}

function signingKey({ id, key }: GitHubSigningKey): KeyObject {
  let parsed: KeyObject | undefined;
  try {
    parsed = createPublicKey(key);
  } catch {
    // Refused below, with the entry named.
  }
  if (
    typeof id !== 'string' ||
    id.length === 0 ||
    parsed?.asymmetricKeyType !== 'ec' ||
    parsed.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
  ) {
    throw new KeygateConfigError(
      'INVALID_OPTION',
      `leaks.githubKeys: each entry needs an id and a PEM ECDSA P-256 public key (entry ${JSON.stringify(id)})`,
    );
  }
  return parsed;
}

/**
 * Whether `signature` (base64 DER, `Github-Public-Key-Signature`) is GitHub's ECDSA P-256 /
 * SHA-256 signature of `body` (the raw bytes, as sent) by the configured key `keyId` names.
 */
export function verifyGitHubSignature(
  keys: ReadonlyMap<string, KeyObject>,
  body: Uint8Array,
  keyId: string | null,
  signature: string | null,
): boolean {
  const key = keyId === null ? undefined : keys.get(keyId.trim());
  if (!key || signature === null || !/^[A-Za-z0-9+/]{8,200}={0,2}$/.test(signature.trim())) {
    return false;
  }
  try {
    return verify(
      'sha256',
      body,
      { key, dsaEncoding: 'der' },
      Buffer.from(signature.trim(), 'base64'),
    );
  } catch {
    return false;
  }
}

/**
 * GitHub's current secret-scanning public keys, to pass as `leaks.githubKeys` (fetched when the app
 * starts, never per request). `token`: a GitHub token, which raises the API's rate limit.
 */
export async function fetchGitHubSigningKeys(
  options: { token?: string; url?: string; fetch?: typeof fetch } = {},
): Promise<GitHubSigningKey[]> {
  const { url = 'https://api.github.com/meta/public_keys/secret_scanning', fetch: get = fetch } =
    options;
  const response = await get(url, {
    headers: {
      accept: 'application/vnd.github+json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
  });
  if (!response.ok) throw new Error(`GitHub public keys: HTTP ${response.status} from ${url}`);
  const body = (await response.json()) as {
    public_keys?: Array<{ key_identifier?: unknown; key?: unknown }>;
  };
  const keys = (body.public_keys ?? []).flatMap((k) =>
    typeof k.key_identifier === 'string' && typeof k.key === 'string'
      ? [{ id: k.key_identifier, key: k.key }]
      : [],
  );
  if (keys.length === 0) throw new Error(`GitHub public keys: none in the answer of ${url}`);
  return keys;
}

/** What a secret is in this deployment. */
export type KeyStatus =
  /** Works now. */
  | 'live'
  | 'revoked'
  | 'expired'
  /** A secret a rotation replaced, past its grace period. */
  | 'rotated'
  /** Well-formed, its checksum holds, but no key of this store has it. */
  | 'unknown';

export interface IdentifiedKey {
  key: ParsedKey;
  /** The stored key, when one has this secret. */
  record: ApiKeyRecord | null;
  status: KeyStatus;
}

/** One report that a secret was seen where it should not be. */
export interface LeakReport {
  /** The text reported: the key, or text holding it. */
  token: string;
  /** Where it was seen (a URL, a file and line); `null` when not known. */
  url?: string | null;
  /** Who or what saw it: `github:<source>`, `scan`, `admin`. */
  source: string;
}

/** What a report came to, for one key found in it. Never holds the secret. */
export interface LeakOutcome {
  /** Whether the report held a key of this deployment that its store knows (and the reporter may see). */
  found: boolean;
  keyId: string | null;
  start: string | null;
  type: ParsedKey['type'] | null;
  environment: KeyEnvironment | null;
  /** The key's status before the report. */
  status: KeyStatus | null;
  /** What the key's leak state says was done (at its first report). */
  containment: Containment | null;
  /** Whether this place had been reported already (nothing was done again). */
  repeated: boolean;
}

export interface LeakServiceDeps {
  store: KeyStore;
  format: KeyFormat;
  hasher: KeyHasher;
  audit: AuditLog;
  /** The store's own audit sink when it is one of `audit`'s: the store writes the events with the change. */
  storeSink: AuditSink | undefined;
  auditReader: AuditReader | null;
  policy: LeakPolicy;
  /** Drops cached verifications of a key here and on every instance. */
  invalidate(keyId: string): Promise<void>;
}

/**
 * Leaked keys: tells what a secret is (`identify`, for `keygate scan`), and acts on reports that
 * one was seen in public (`report`: the leak endpoint, `keygate scan --report`): each key found
 * and stored is contained as its environment's policy says, once per reported place, and each
 * first report of a place is an audit event `key.leaked` (with `key.revoked` when it revokes).
 */
export class LeakService {
  readonly #deps: LeakServiceDeps;
  /** The deployment's key format: what a report's tokens are parsed with. */
  readonly format: KeyFormat;

  constructor(deps: LeakServiceDeps) {
    this.#deps = deps;
    this.format = deps.format;
  }

  /** Whether a report is signed by one of the configured GitHub keys (see `verifyGitHubSignature`). */
  verifyGitHub(body: Uint8Array, keyId: string | null, signature: string | null): boolean {
    return verifyGitHubSignature(this.#deps.policy.githubKeys, body, keyId, signature);
  }

  /** The stored key a secret belongs to, if any, and whether it works now. */
  async identify(secret: string): Promise<IdentifiedKey | null> {
    const key = this.#deps.format.parse(secret);
    if (!key) return null;
    const { hasher, store } = this.#deps;
    const digests = [hasher.digest(secret)];
    if (hasher.legacy) digests.push(hasher.legacy.digest(secret));
    for (const digest of digests) {
      const record = await store.findByDigest(digest);
      if (record && record.type === key.type && record.environment === key.environment) {
        return { key, record, status: statusOf(record, digest, Date.now()) };
      }
    }
    return { key, record: null, status: 'unknown' };
  }

  /**
   * Acts on reports, in order; one outcome per key found in a report's token, or one saying
   * nothing was found. With `actor.ownerId`, another owner's key is as unknown.
   */
  async report(reports: readonly LeakReport[], actor: Actor): Promise<LeakOutcome[][]> {
    const outcomes: LeakOutcome[][] = [];
    for (const report of reports) {
      const found = findKeys(report.token, this.#deps.format);
      const forReport: LeakOutcome[] = [];
      for (const key of found) {
        forReport.push(await this.#reportKey(key.secret, report, actor));
      }
      outcomes.push(forReport.length > 0 ? forReport : [NOTHING_FOUND]);
    }
    return outcomes;
  }

  async #reportKey(secret: string, report: LeakReport, actor: Actor): Promise<LeakOutcome> {
    const identified = await this.identify(secret);
    const record = identified?.record;
    if (
      !identified ||
      !record ||
      (actor.ownerId !== undefined && record.ownerId !== actor.ownerId)
    ) {
      return NOTHING_FOUND;
    }
    const { store, audit, storeSink, policy } = this.#deps;
    const at = new Date();
    // A URL may carry a key (`?api_key=`): it is recorded cut to the key's start.
    const url = report.url ? this.#deps.format.redact(report.url).slice(0, 2048) : null;
    const containment: Containment =
      record.type === 'public' ? 'notify' : policy.containment[record.environment];
    const quarantine =
      containment === 'quarantine' && record.leak === null
        ? await this.#quarantineOf(record, at)
        : null;
    const result = await store.recordLeak(
      {
        keyId: record.id,
        fingerprint: createHash('sha256')
          .update(`${report.source}\n${url ?? ''}`)
          .digest('hex'),
        url,
        source: report.source,
        at,
      },
      (current) =>
        this.#change(current, { at, url, source: report.source, containment, quarantine }, actor),
      storeSink !== undefined,
    );
    if (!result) return NOTHING_FOUND;
    const { change } = result;
    if (change) {
      for (const event of change.events) audit.record(event, { except: storeSink });
      await this.#deps.invalidate(record.id);
    }
    return {
      found: true,
      keyId: record.id,
      start: record.start,
      type: record.type,
      environment: record.environment,
      status: identified.status,
      containment: (change?.leak ?? result.record.leak)?.containment ?? containment,
      repeated: change === null,
    };
  }

  /** What a quarantine keeps: the IPs the key was used from lately, and its read scopes. */
  async #quarantineOf(record: ApiKeyRecord, at: Date): Promise<KeyLeak['quarantine']> {
    const { audit, auditReader, policy } = this.#deps;
    // This instance's latest uses count too: written first, they are read back with the rest.
    await audit.flush();
    const since = new Date(at.getTime() - policy.quarantineDays * 86_400_000);
    const ips = (await auditReader?.clientIps?.(record.id, since, MAX_QUARANTINE_IPS)) ?? [];
    return { ips, scopes: record.scopes.filter(policy.isReadScope) };
  }

  /** The change a report makes to the key as it stands: the first report contains it, later ones add to its state. */
  #change(
    current: ApiKeyRecord,
    report: {
      at: Date;
      url: string | null;
      source: string;
      containment: Containment;
      quarantine: KeyLeak['quarantine'];
    },
    actor: Actor,
  ): LeakChange {
    const at = report.at.toISOString();
    const earlier = current.leak;
    const leak: KeyLeak = earlier
      ? { ...earlier, lastReportedAt: at, reports: earlier.reports + 1, url: report.url }
      : {
          reportedAt: at,
          lastReportedAt: at,
          reports: 1,
          url: report.url,
          source: report.source,
          containment: report.containment,
          quarantine: report.containment === 'quarantine' ? report.quarantine : null,
        };
    const revoke = earlier === null && leak.containment === 'revoke' && current.revokedAt === null;
    const events = [
      this.#event(current, 'key.leaked', actor, report.at, {
        url: report.url,
        source: report.source,
        containment: leak.containment,
        reports: leak.reports,
        type: current.type,
        environment: current.environment,
        ...(leak.quarantine && earlier === null
          ? { quarantinedIps: leak.quarantine.ips.length, keptScopes: leak.quarantine.scopes }
          : {}),
      }),
    ];
    if (revoke) {
      events.push(this.#event(current, 'key.revoked', actor, report.at, { reason: 'leaked' }));
    }
    return { leak, revoke, events };
  }

  #event(
    key: ApiKeyRecord,
    action: AuditEvent['action'],
    actor: Actor,
    at: Date,
    detail: Record<string, unknown>,
  ): AuditEvent {
    return {
      id: randomUUID(),
      at,
      action,
      outcome: 'success',
      reason: action === 'key.revoked' ? 'leaked' : null,
      keyId: key.id,
      keyStart: key.start,
      ownerId: key.ownerId,
      actor: actor.id,
      ip: actor.ip ?? null,
      userAgent: actor.userAgent ?? null,
      method: actor.method ?? null,
      path: actor.path ?? null,
      requestId: actor.requestId ?? null,
      detail,
    };
  }
}

const NOTHING_FOUND: LeakOutcome = Object.freeze({
  found: false,
  keyId: null,
  start: null,
  type: null,
  environment: null,
  status: null,
  containment: null,
  repeated: false,
});

/** Whether a stored key found by `digest` works now, as the request path would judge it. */
function statusOf(record: ApiKeyRecord, digest: string, nowMs: number): KeyStatus {
  if (record.revokedAt) return 'revoked';
  if (record.digest !== digest && (record.previousDigestExpiresAt?.getTime() ?? 0) <= nowMs) {
    return 'rotated';
  }
  if (record.expiresAt && record.expiresAt.getTime() <= nowMs) return 'expired';
  return 'live';
}
