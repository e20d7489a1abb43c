import { type RateLimitTier, type RateLimitTiers, resolveLimits } from './rate-limit.js';
import { restrictionsBeyond } from './restrictions.js';
import type {
  ApiKeyRecord,
  KeyEnvironment,
  KeyRestrictions,
  KeyType,
  Principal,
  RateLimitOverride,
} from './types.js';

/**
 * How far a caller reaches, and so the most it may hand on: a key it creates, updates, rotates or
 * revokes must reach no further. A field that is absent does not bound (a session is bounded by
 * its scopes and resources only).
 */
export interface DelegationBounds {
  scopes: readonly string[];
  /** `null`: every resource of the owner. */
  resources: readonly string[] | null;
  environment?: KeyEnvironment;
  type?: KeyType;
  /** `null`: the caller never expires. */
  expiresAt?: Date | null;
  /** The caller's own override of its type's tier (`null`: the tier). Compared as effective limits. */
  rateLimit?: RateLimitOverride | null;
  restrictions?: KeyRestrictions | null;
}

/** What a key reaches: the fields delegation compares. */
export type KeyReach = Pick<
  ApiKeyRecord,
  'scopes' | 'resources' | 'environment' | 'type' | 'expiresAt' | 'rateLimit' | 'restrictions'
>;

/** The bounds of a principal: everything its key has, or the scopes and resources of a session. */
export function boundsOf(principal: Principal): DelegationBounds {
  if (principal.kind === 'session') {
    return { scopes: principal.scopes, resources: principal.resources };
  }
  const { key } = principal;
  return {
    scopes: key.scopes,
    resources: key.resources,
    environment: key.environment,
    type: key.type,
    expiresAt: key.expiresAt,
    rateLimit: key.rateLimit,
    restrictions: key.restrictions,
  };
}

/**
 * Why a caller with `bounds` may not manage a key reaching as far as `key`, naming the bound it
 * exceeds (`scopes: cannot grant write:llm, which the caller does not hold`), or `null` when the
 * key reaches no further than the caller.
 */
export function delegationRefusal(
  bounds: DelegationBounds,
  key: KeyReach,
  tiers: RateLimitTiers,
): string | null {
  if (bounds.type === 'public') return 'type: a public key cannot manage keys';
  if (bounds.environment !== undefined && key.environment !== bounds.environment) {
    return `environment: cannot manage a ${key.environment} key, the caller is a ${bounds.environment} key`;
  }
  const scope = key.scopes.find((s) => !bounds.scopes.includes(s));
  if (scope !== undefined) return `scopes: cannot grant ${scope}, which the caller does not hold`;
  const resources = resourcesBeyond(key.resources, bounds.resources);
  if (resources) return resources;
  if (bounds.expiresAt) {
    const limit = bounds.expiresAt.toISOString();
    if (!key.expiresAt) return `expiresAt: the key must expire, as the caller does (${limit})`;
    if (key.expiresAt > bounds.expiresAt) {
      return `expiresAt: the key cannot outlive the caller, which expires at ${limit}`;
    }
  }
  if (bounds.type !== undefined) {
    const limits = limitsBeyond(
      resolveLimits(tiers[key.type], key.rateLimit),
      resolveLimits(tiers[bounds.type], bounds.rateLimit ?? null),
    );
    if (limits) return limits;
  }
  if (bounds.restrictions !== undefined) {
    return restrictionsBeyond(key.restrictions, bounds.restrictions);
  }
  return null;
}

/** `website:*` covers every `website:` resource, itself included; anything else covers itself. */
function covers(granted: string, resource: string): boolean {
  return (
    granted === resource || (granted.endsWith(':*') && resource.startsWith(granted.slice(0, -1)))
  );
}

function resourcesBeyond(
  resources: readonly string[] | null,
  bound: readonly string[] | null,
): string | null {
  if (bound === null) return null;
  if (resources === null) {
    return 'resources: cannot grant access to every resource, which only a global caller has';
  }
  const outside = resources.find((r) => !bound.some((granted) => covers(granted, r)));
  return outside === undefined
    ? null
    : `resources: cannot grant ${outside}, which the caller does not hold`;
}

function limitsBeyond(limits: RateLimitTier, bound: RateLimitTier): string | null {
  for (const field of ['perSecond', 'burst', 'daily'] as const) {
    if (limits[field] > bound[field]) {
      return `rateLimit.${field}: ${limits[field]} is more than the caller's ${bound[field]}`;
    }
  }
  return null;
}
