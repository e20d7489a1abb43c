import { randomUUID } from 'node:crypto';
import {
  KeygateConfigError,
  type RateLimiter,
  type RateLimitPolicy,
  type RateLimitResult,
  settlePolicies,
} from '@keygate/core';
import type { RedisClient } from './client.js';
import { LEASE_SCRIPT } from './lease-script.js';
import { requirePositive } from './node-health.js';
import { type PolicyStateField, policyField } from './rate-limit-script.js';
import {
  type LimiterBackend,
  limiterBackend,
  policyArgs,
  type RedisRateLimiterOptions,
} from './rate-limiter.js';

export interface LeasedRedisRateLimiterOptions extends RedisRateLimiterOptions {
  /**
   * Longest an instance spends one lease before asking Redis again, in ms: a busy key costs an
   * instance one Redis call per lease. Default 20,000.
   */
  leaseMs?: number;
  /** A lease unused this long goes back to Redis, so other instances can have its tokens, in ms. Default 1,000. */
  idleMs?: number;
  /**
   * Largest share of what a key has left that one lease may take: the smaller, the fewer tokens
   * other instances hold when a key runs out, and the more Redis calls near its limits. Default 1/32.
   */
  maxLeaseShare?: number;
}

const COMMAND = 'keygateLease';

type LeaseReply = [number, string, number, ...string[]];
type LeaseCommand = Record<
  typeof COMMAND,
  (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<LeaseReply>
>;

/** Tokens Redis granted this instance for one subject, spent in memory. Times are `performance.now()` ms. */
interface Lease {
  seq: number;
  policies: readonly RateLimitPolicy[];
  granted: number;
  /** Unspent tokens. */
  tokens: number;
  grantedAt: number;
  /** No token is spent from this time on: before Redis's own expiry and before any window ends. */
  deadline: number;
  /** By this time Redis has reclaimed the lease, whatever happened to it. */
  reclaimedBy: number;
  lastUsed: number;
  /** What each policy had left in Redis once this lease was granted. */
  left: number[];
  windows: number[];
  /** Redis's clock (epoch ms) at `grantedAt`. */
  redisMs: number;
}

/** A lease given up in a call whose reply never came: the next call settles it. */
interface Unsettled {
  seq: number;
  unspent: number;
  policies: readonly RateLimitPolicy[];
  reclaimedBy: number;
}

type Outcome =
  | { kind: 'granted' }
  | { kind: 'given-back' }
  | { kind: 'rejected'; result: RateLimitResult }
  | { kind: 'failed'; error: unknown };

interface SubjectLeases {
  /**
   * The instance's last lease number when this record was made: a lease of the subject on record
   * in Redis with this number or lower was received by an earlier record (and is spent).
   */
  baseSeq: number;
  lease: Lease | null;
  unsettled: Unsettled | null;
  /** The one call to Redis in flight for this subject: concurrent requests share it. */
  call: Promise<Outcome> | null;
  /** Requests waiting for `call`. */
  waiting: number;
  /** Requests per second this instance saw for the subject, measured over its last lease. */
  rate: number;
}

/**
 * Limits shared by every instance on the same Redis, with most requests answered from memory. An
 * instance takes a lease of tokens for a key from Redis (all of the key's policies charged
 * together, in one script call on Redis's clock), spends it locally, and asks again when it runs
 * out, when the lease ends (`leaseMs`) or when the key's policies change. It never admits more
 * than Redis granted it, so all instances together never admit more than exact mode would.
 *
 * A lease is sized to twice what this instance would use over a lease length at the rate it
 * spent its previous one, and never more than `maxLeaseShare` of what the key has left: large
 * far from the limits, one token (exact mode's behaviour) near them. Unspent tokens go back when a lease is unused for `idleMs`, when the key
 * changes (`invalidate`), and on `close()`. A lease whose instance died is reclaimed by Redis
 * shortly after it ends. While a key's node is down, requests spend what is already leased,
 * then fall back as in exact mode (`onRedisError`).
 */
export class LeasedRedisRateLimiter implements RateLimiter {
  readonly #client: RedisClient;
  readonly #backend: LimiterBackend;
  readonly #namespace: string;
  readonly #leaseMs: number;
  readonly #idleMs: number;
  readonly #graceMs: number;
  readonly #maxLeaseShare: number;
  readonly #instance = randomUUID();
  readonly #subjects = new Map<string, SubjectLeases>();
  readonly #sweeper: NodeJS.Timeout;
  #seq = 0;
  #closing: Promise<void> | null = null;

  constructor(options: LeasedRedisRateLimiterOptions) {
    this.#backend = limiterBackend(options, 'LeasedRedisRateLimiter');
    const { leaseMs = 20_000, idleMs = 1_000, maxLeaseShare = 1 / 32 } = options;
    requirePositive('leaseMs', leaseMs);
    requirePositive('idleMs', idleMs);
    if (!(maxLeaseShare > 0 && maxLeaseShare <= 1)) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `maxLeaseShare must be a number in (0, 1] (got ${String(maxLeaseShare)})`,
      );
    }
    this.#client = options.client;
    this.#namespace = options.namespace ?? 'keygate';
    this.#leaseMs = leaseMs;
    this.#idleMs = idleMs;
    // An idle lease is given back within 1.5 × idleMs of its last use, a call taking up to the timeout.
    this.#graceMs = 2 * idleMs + this.#backend.timeoutMs;
    this.#maxLeaseShare = maxLeaseShare;
    this.#client.defineCommand(COMMAND, { lua: LEASE_SCRIPT });
    this.#sweeper = setInterval(() => this.#sweep(), idleMs / 2);
    this.#sweeper.unref();
  }

  /** The Redis hash holding every policy's state for `subject`, as for `RedisRateLimiter`. */
  keyOf(subject: string): string {
    return `${this.#namespace}:rl:{${subject}}`;
  }

  /** The field of `keyOf(subject)` holding `field` of `policyName`'s state, as for `RedisRateLimiter`. */
  fieldOf(policyName: string, field: PolicyStateField): string {
    return policyField(policyName, field);
  }

  /** The Redis hash of `subject`'s leases, in the same slot as its policies. */
  leaseKeyOf(subject: string): string {
    return `${this.#namespace}:lease:{${subject}}`;
  }

  /** A token of the instance's lease at once, without a promise; a promise while a lease is asked for. */
  consume(
    subject: string,
    policies: readonly RateLimitPolicy[],
  ): RateLimitResult | Promise<RateLimitResult> {
    if (policies.length === 0) return { allowed: true, policies: [] };
    let state = this.#subjects.get(subject);
    if (!state) {
      state = {
        baseSeq: this.#seq,
        lease: null,
        unsettled: null,
        call: null,
        waiting: 0,
        rate: 0,
      };
      this.#subjects.set(subject, state);
    }
    return this.#spendOrWait(subject, state, policies);
  }

  #spendOrWait(
    subject: string,
    state: SubjectLeases,
    policies: readonly RateLimitPolicy[],
  ): RateLimitResult | Promise<RateLimitResult> {
    const now = performance.now();
    const lease = state.lease;
    if (lease && lease.tokens >= 1 && now < lease.deadline && samePolicies(lease, policies)) {
      return spend(lease, policies, now);
    }
    return this.#wait(subject, state, policies);
  }

  /** Waits for the lease being asked for (or asks for one), then spends from it. */
  async #wait(
    subject: string,
    state: SubjectLeases,
    policies: readonly RateLimitPolicy[],
  ): Promise<RateLimitResult> {
    state.waiting++;
    let outcome: Outcome;
    try {
      outcome = await (state.call ?? this.#start(subject, state, policies, 'lease'));
    } finally {
      state.waiting--;
    }
    if (outcome.kind === 'rejected') return outcome.result;
    if (outcome.kind === 'failed') return this.#backend.fallback(subject, policies, outcome.error);
    return this.#spendOrWait(subject, state, policies);
  }

  /** Gives back `subject`'s lease: its limits may have changed, or the key is gone. */
  invalidate(subject: string): void {
    const state = this.#subjects.get(subject);
    if (state && !state.call && (state.lease?.tokens ?? 0) >= 1) this.#giveBack(subject, state);
  }

  /** Gives back every lease. */
  reset(): void {
    for (const subject of this.#subjects.keys()) this.invalidate(subject);
  }

  /** Gives back every lease (spent ones too, so Redis need not wait to reclaim them), then closes what the limiter owns. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweeper);
      await Promise.allSettled([...this.#subjects.values()].map((state) => state.call));
      await Promise.allSettled(
        [...this.#subjects].flatMap(([subject, state]) =>
          state.lease || state.unsettled ? [this.#giveBack(subject, state)] : [],
        ),
      );
      await this.#backend.close();
    })();
    return this.#closing;
  }

  #giveBack(subject: string, state: SubjectLeases): Promise<Outcome> {
    const policies = state.lease?.policies ?? state.unsettled?.policies ?? [];
    return this.#start(subject, state, policies, 'give-back');
  }

  #start(
    subject: string,
    state: SubjectLeases,
    policies: readonly RateLimitPolicy[],
    purpose: 'lease' | 'give-back',
  ): Promise<Outcome> {
    const call = this.#call(subject, state, policies, purpose).finally(() => {
      state.call = null;
    });
    state.call = call;
    return call;
  }

  /** One script call: settles the lease held (or left unsettled) and, to `'lease'`, takes the next. */
  async #call(
    subject: string,
    state: SubjectLeases,
    policies: readonly RateLimitPolicy[],
    purpose: 'lease' | 'give-back',
  ): Promise<Outcome> {
    const startedAt = performance.now();
    const held = state.lease;
    if (held) {
      // From here on the lease is Redis's again: nothing more is spent from it.
      const seconds = Math.max(startedAt - held.grantedAt, 1) / 1000;
      state.rate = (held.granted - held.tokens) / seconds;
      state.unsettled = {
        seq: held.seq,
        unspent: held.tokens,
        policies: held.policies,
        reclaimedBy: held.reclaimedBy,
      };
      state.lease = null;
    }
    const settling = state.unsettled;
    // Twice what this instance would use over a lease's length at its last rate, so the lease
    // lasts its length even if traffic grows (the rest comes back with the next call), and at
    // least a token for every request waiting.
    const ask =
      purpose === 'lease'
        ? Math.max(state.waiting, Math.ceil((2 * state.rate * this.#leaseMs) / 1000), 1)
        : 0;
    const seq = ++this.#seq;
    const leaseKey = this.leaseKeyOf(subject);
    const keys = [leaseKey, this.keyOf(subject)];
    const args = [
      this.#instance,
      String(settling?.seq ?? state.baseSeq),
      String(settling?.unspent ?? 0),
      String(seq),
      String(ask),
      String(this.#leaseMs),
      String(this.#graceMs),
      String(this.#maxLeaseShare),
      ...policyArgs(policies),
    ];
    let reply: LeaseReply;
    try {
      const command = (this.#client as unknown as LeaseCommand)[COMMAND];
      reply = await this.#backend.nodeHealth.call(
        leaseKey,
        () => command.call(this.#client, keys.length, ...keys, ...args),
        this.#backend.timeoutMs,
      );
    } catch (error) {
      // Redis may still run the call: `unsettled` and the sequence number let the next one tell.
      return { kind: 'failed', error };
    }
    const receivedAt = performance.now();
    state.unsettled = null;
    const granted = Number(reply[0]);
    const redisMs = Number(reply[1]) / 1000;
    const available = policies.map((_, i) => Number(reply[3 + 2 * i]));
    const windows = policies.map((_, i) => Number(reply[4 + 2 * i]));
    if (granted > 0) {
      const ttlMs = Number(reply[2]);
      state.lease = {
        seq,
        policies,
        granted,
        tokens: granted,
        grantedAt: receivedAt,
        // Counted from before the call: Redis started the lease later than that.
        deadline: startedAt + ttlMs,
        // Counted from after the reply: Redis started the lease before that.
        reclaimedBy: receivedAt + ttlMs + this.#graceMs,
        lastUsed: receivedAt,
        left: available.map((a) => a - granted),
        windows,
        redisMs,
      };
      return { kind: 'granted' };
    }
    if (ask === 0) return { kind: 'given-back' };
    const snapshots = policies.map((policy, i) => ({
      policy,
      available: available[i]!,
      window: windows[i],
    }));
    return { kind: 'rejected', result: settlePolicies(snapshots, false, redisMs) };
  }

  /**
   * Gives back leases unused for `idleMs` and forgets subjects with nothing left to settle: a
   * spent lease is left for Redis to reclaim (or for the subject's next lease to settle), rather
   * than spending a call on it.
   */
  #sweep(): void {
    const now = performance.now();
    for (const [subject, state] of this.#subjects) {
      if (state.call || state.waiting > 0) continue;
      const lease = state.lease;
      if (lease) {
        if (now - lease.lastUsed < this.#idleMs) continue;
        if (lease.tokens >= 1) this.#giveBack(subject, state);
        else this.#subjects.delete(subject);
      } else if (state.unsettled) {
        if (now >= state.unsettled.reclaimedBy) this.#subjects.delete(subject);
        else this.#giveBack(subject, state);
      } else {
        this.#subjects.delete(subject);
      }
    }
  }
}

function samePolicies(lease: Lease, policies: readonly RateLimitPolicy[]): boolean {
  const held = lease.policies;
  if (held === policies) return true;
  if (held.length !== policies.length) return false;
  for (let i = 0; i < held.length; i++) {
    const a = held[i]!;
    const b = policies[i]!;
    if (a.name !== b.name) return false;
    if (a.kind === 'token-bucket') {
      if (
        b.kind !== 'token-bucket' ||
        a.capacity !== b.capacity ||
        a.refillPerSecond !== b.refillPerSecond
      ) {
        return false;
      }
    } else if (
      b.kind !== 'fixed-window' ||
      a.limit !== b.limit ||
      a.windowSeconds !== b.windowSeconds
    ) {
      return false;
    }
  }
  return true;
}

/**
 * Spends one token of `lease`. The headers tell what this instance knows: what Redis had left
 * when it granted the lease, plus the lease's unspent tokens, plus a bucket's refill since.
 */
function spend(lease: Lease, policies: readonly RateLimitPolicy[], now: number): RateLimitResult {
  const before = lease.tokens;
  lease.tokens = before - 1;
  lease.lastUsed = now;
  const elapsed = (now - lease.grantedAt) / 1000;
  const snapshots = policies.map((policy, i) => {
    const known = lease.left[i]! + before;
    return policy.kind === 'token-bucket'
      ? { policy, available: Math.min(policy.capacity, known + elapsed * policy.refillPerSecond) }
      : { policy, available: known, window: lease.windows[i] };
  });
  return settlePolicies(snapshots, true, lease.redisMs + (now - lease.grantedAt));
}
