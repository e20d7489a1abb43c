import { KeygateConfigError, KeygateError } from './errors.js';
import type { Principal, Scope, ScopeRequirement } from './types.js';

/** What a route needs: scopes (all or any of them), optionally a resource and a key type. */
export type ScopeSpec =
  | Scope
  | readonly Scope[]
  | { readonly all: readonly Scope[] }
  | { readonly any: readonly Scope[] };

/** Parses a guard's declaration once, when the route is defined; a bad one throws there. */
export function scopeRequirement(
  spec: ScopeSpec,
  options: Pick<ScopeRequirement, 'keyType' | 'environments'> = {},
): ScopeRequirement {
  const { keyType, environments } = options;
  let scopes: readonly string[];
  let mode: 'all' | 'any' = 'all';
  if (typeof spec === 'string') scopes = [spec];
  else if (Array.isArray(spec)) scopes = spec as readonly string[];
  else if ('any' in spec) {
    scopes = spec.any;
    mode = 'any';
  } else scopes = (spec as { all: readonly string[] }).all;
  if (scopes.length === 0 || scopes.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new KeygateConfigError('INVALID_OPTION', 'requireScope() needs at least one scope name');
  }
  if (keyType !== undefined && keyType !== 'secret' && keyType !== 'public') {
    throw new KeygateConfigError('INVALID_OPTION', `keyType must be 'secret' or 'public'`);
  }
  if (
    environments !== undefined &&
    (!Array.isArray(environments) ||
      environments.length === 0 ||
      environments.some((e) => e !== 'live' && e !== 'test'))
  ) {
    throw new KeygateConfigError('INVALID_OPTION', `environments must list 'live' and/or 'test'`);
  }
  return {
    scopes,
    mode,
    ...(keyType ? { keyType } : {}),
    ...(environments ? { environments } : {}),
  };
}

/** Fills `{param}` placeholders of a resource template (`website:{websiteId}`) from route params. */
export function resolveResource(
  template: string,
  param: (name: string) => string | undefined,
): string | null {
  return compileResource(template)(param);
}

/**
 * A resource template (`website:{websiteId}`) made ready once, when the route is declared: per
 * request, its parts are joined with the route params; `null` when one is missing or empty.
 */
export function compileResource(
  template: string,
): (param: (name: string) => string | undefined) => string | null {
  // Text and parameter names alternate: `website:{websiteId}` is ['website:', 'websiteId', ''].
  const parts = template.split(/\{(\w+)\}/);
  return (param) => {
    let resource = parts[0]!;
    for (let i = 1; i < parts.length; i += 2) {
      const value = param(parts[i]!);
      if (value === undefined || value === '') return null;
      resource += value + parts[i + 1]!;
    }
    return resource;
  };
}

export function hasResource(granted: readonly string[] | null, resource: string): boolean {
  if (granted === null) return true;
  const type = resource.slice(0, resource.indexOf(':') + 1);
  return granted.some((g) => g === resource || (type !== '' && g === `${type}*`));
}

/**
 * The failure a principal meets against a requirement, or `null` when it passes.
 * `resource` is `undefined` when the route names none, `null` when it names one the request lacks.
 */
export function checkRequirement(
  principal: Principal,
  requirement: ScopeRequirement,
  resource: string | null | undefined,
): KeygateError | null {
  if (requirement.keyType && principal.type !== requirement.keyType) {
    return new KeygateError('FORBIDDEN', {
      message: `This endpoint requires a ${requirement.keyType} API key`,
      reason: 'key_type',
    });
  }
  if (requirement.environments && !requirement.environments.includes(principal.environment)) {
    return new KeygateError('FORBIDDEN', {
      message: `This endpoint requires a ${requirement.environments.join(' or ')} API key`,
      reason: 'environment',
    });
  }
  const granted = principal.scopes;
  const ok =
    requirement.mode === 'all'
      ? requirement.scopes.every((s) => granted.includes(s))
      : requirement.scopes.some((s) => granted.includes(s));
  if (!ok) {
    const needed = requirement.scopes.join(' ');
    return new KeygateError('INSUFFICIENT_SCOPE', {
      message:
        requirement.mode === 'all' || requirement.scopes.length === 1
          ? `API key lacks the required scope: ${needed}`
          : `API key needs one of the scopes: ${needed}`,
      reason: 'insufficient_scope',
      requiredScope: needed,
    });
  }
  if (
    resource !== undefined &&
    (resource === null || !hasResource(principal.resources, resource))
  ) {
    return new KeygateError('ACCESS_DENIED', { reason: 'resource_not_granted' });
  }
  return null;
}
