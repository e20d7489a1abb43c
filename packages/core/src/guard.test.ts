import { describe, expect, it } from 'vitest';
import { KeygateConfigError } from './errors.js';
import {
  checkRequirement,
  hasResource,
  resolveResource,
  type ScopeSpec,
  scopeRequirement,
} from './guard.js';
import type { ApiKey, KeyType, Principal } from './types.js';

function keyPrincipal(
  scopes: string[],
  resources: string[] | null = null,
  type: KeyType = 'secret',
): Principal {
  return {
    kind: 'key',
    id: 'key_1',
    ownerId: 'org_1',
    scopes,
    resources,
    type,
    environment: 'live',
    key: { id: 'key_1', start: 'sk_live_abcdef' } as ApiKey,
  };
}

describe('scopeRequirement', () => {
  it('a single scope', () => {
    expect(scopeRequirement('read:data')).toEqual({ scopes: ['read:data'], mode: 'all' });
  });

  it('an array requires all of them', () => {
    expect(scopeRequirement(['read:data', 'write:llm'])).toEqual({
      scopes: ['read:data', 'write:llm'],
      mode: 'all',
    });
    expect(scopeRequirement({ all: ['read:data', 'write:llm'] })).toEqual({
      scopes: ['read:data', 'write:llm'],
      mode: 'all',
    });
  });

  it('{ any } requires one of them', () => {
    expect(scopeRequirement({ any: ['read:data', 'read:config'] })).toEqual({
      scopes: ['read:data', 'read:config'],
      mode: 'any',
    });
  });

  it('keeps a key type restriction', () => {
    expect(scopeRequirement('read:data', { keyType: 'secret' })).toEqual({
      scopes: ['read:data'],
      mode: 'all',
      keyType: 'secret',
    });
  });

  it.each<[string, ScopeSpec]>([
    ['an empty array', []],
    ['an empty { all }', { all: [] }],
    ['an empty { any }', { any: [] }],
    ['an empty scope name', '' as ScopeSpec],
    ['an empty name in a list', ['read:data', ''] as unknown as ScopeSpec],
  ])('throws when declared with %s', (_, spec) => {
    expect(() => scopeRequirement(spec)).toThrow(KeygateConfigError);
  });

  it('throws on an unknown key type', () => {
    expect(() => scopeRequirement('read:data', { keyType: 'admin' as KeyType })).toThrow(/keyType/);
  });
});

describe('checkRequirement', () => {
  const readData = scopeRequirement('read:data');

  it('passes a key holding the scope', () => {
    expect(checkRequirement(keyPrincipal(['read:data']), readData, undefined)).toBeNull();
  });

  it('INSUFFICIENT_SCOPE names the scope needed in the challenge', () => {
    const error = checkRequirement(keyPrincipal(['track:events']), readData, undefined);
    expect(error?.code).toBe('INSUFFICIENT_SCOPE');
    expect(error?.status).toBe(403);
    expect(error?.message).toBe('API key lacks the required scope: read:data');
    expect(error?.wwwAuthenticate).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="read:data"',
    );
  });

  it('all-mode needs every scope; any-mode needs one', () => {
    const all = scopeRequirement(['read:data', 'write:llm']);
    const any = scopeRequirement({ any: ['read:data', 'write:llm'] });
    expect(checkRequirement(keyPrincipal(['read:data']), all, undefined)?.code).toBe(
      'INSUFFICIENT_SCOPE',
    );
    expect(checkRequirement(keyPrincipal(['read:data', 'write:llm']), all, undefined)).toBeNull();
    expect(checkRequirement(keyPrincipal(['write:llm']), any, undefined)).toBeNull();
    const error = checkRequirement(keyPrincipal(['track:events']), any, undefined);
    expect(error?.code).toBe('INSUFFICIENT_SCOPE');
    expect(error?.message).toBe('API key needs one of the scopes: read:data write:llm');
    expect(error?.wwwAuthenticate).toContain('scope="read:data write:llm"');
  });

  it('does not treat a scope as a prefix of another', () => {
    expect(checkRequirement(keyPrincipal(['read']), readData, undefined)?.code).toBe(
      'INSUFFICIENT_SCOPE',
    );
    expect(checkRequirement(keyPrincipal(['read:data:extra']), readData, undefined)?.code).toBe(
      'INSUFFICIENT_SCOPE',
    );
  });

  it('ACCESS_DENIED when the scope is there but the resource is not', () => {
    const principal = keyPrincipal(['read:data'], ['website:w_1']);
    expect(checkRequirement(principal, readData, 'website:w_1')).toBeNull();
    const error = checkRequirement(principal, readData, 'website:w_2');
    expect(error?.code).toBe('ACCESS_DENIED');
    expect(error?.status).toBe(403);
    expect(error?.wwwAuthenticate).toBeUndefined();
  });

  it('ACCESS_DENIED when the route names a resource the request lacks', () => {
    expect(checkRequirement(keyPrincipal(['read:data']), readData, null)?.code).toBe(
      'ACCESS_DENIED',
    );
  });

  it('a global key (resources null) reaches every resource', () => {
    expect(checkRequirement(keyPrincipal(['read:data'], null), readData, 'link:l_9')).toBeNull();
  });

  it('an empty resource list reaches none', () => {
    expect(checkRequirement(keyPrincipal(['read:data'], []), readData, 'link:l_9')?.code).toBe(
      'ACCESS_DENIED',
    );
  });

  it('checks key type, then scope, then resource', () => {
    const secretOnly = scopeRequirement('read:data', { keyType: 'secret' });
    const publicKey = keyPrincipal(['track:events'], ['website:w_1'], 'public');
    const typeError = checkRequirement(publicKey, secretOnly, 'website:w_2');
    expect(typeError?.code).toBe('FORBIDDEN');
    expect(typeError?.message).toBe('This endpoint requires a secret API key');

    const secretKey = keyPrincipal(['track:events'], ['website:w_1']);
    expect(checkRequirement(secretKey, secretOnly, 'website:w_2')?.code).toBe('INSUFFICIENT_SCOPE');
    const scoped = keyPrincipal(['read:data'], ['website:w_1']);
    expect(checkRequirement(scoped, secretOnly, 'website:w_2')?.code).toBe('ACCESS_DENIED');
    expect(checkRequirement(scoped, secretOnly, 'website:w_1')).toBeNull();
  });

  it('a route bound to an environment refuses keys of the other, before their scopes', () => {
    const liveOnly = scopeRequirement('read:data', { environments: ['live'] });
    const test: Principal = { ...keyPrincipal(['read:data']), environment: 'test' };
    const refused = checkRequirement(test, liveOnly, undefined);
    expect(refused?.code).toBe('FORBIDDEN');
    expect(refused?.reason).toBe('environment');
    expect(refused?.message).toBe('This endpoint requires a live API key');
    expect(checkRequirement({ ...test, scopes: [] }, liveOnly, undefined)?.code).toBe('FORBIDDEN');
    expect(checkRequirement(keyPrincipal(['read:data']), liveOnly, undefined)).toBeNull();
    const either = scopeRequirement('read:data', { environments: ['live', 'test'] });
    expect(checkRequirement(test, either, undefined)).toBeNull();
    expect(() => scopeRequirement('read:data', { environments: [] })).toThrow(KeygateConfigError);
    expect(() => scopeRequirement('read:data', { environments: ['production' as never] })).toThrow(
      /environments/,
    );
  });

  it('a public key passes a route open to any key type', () => {
    const events = scopeRequirement('track:events');
    expect(
      checkRequirement(keyPrincipal(['track:events'], null, 'public'), events, undefined),
    ).toBeNull();
  });
});

describe('hasResource', () => {
  it('`type:*` grants every resource of that type only', () => {
    expect(hasResource(['website:*'], 'website:w_1')).toBe(true);
    expect(hasResource(['website:*'], 'website:w_99')).toBe(true);
    expect(hasResource(['website:*'], 'link:l_1')).toBe(false);
    expect(hasResource(['website:*'], 'websites:w_1')).toBe(false);
  });

  it('exact grants only match exactly', () => {
    expect(hasResource(['link:l_9'], 'link:l_9')).toBe(true);
    expect(hasResource(['link:l_9'], 'link:l_90')).toBe(false);
    expect(hasResource(['link:l_9'], 'link:l_')).toBe(false);
  });

  it('a resource without a type is only matched exactly', () => {
    expect(hasResource([':*', '*'], 'orphan')).toBe(false);
    expect(hasResource(['orphan'], 'orphan')).toBe(true);
  });

  it('a request for `type:*` is not granted by one specific resource', () => {
    expect(hasResource(['website:w_1'], 'website:*')).toBe(false);
  });
});

describe('resolveResource', () => {
  const params = (values: Record<string, string>) => (name: string) => values[name];

  it('fills placeholders from route params', () => {
    expect(resolveResource('website:{websiteId}', params({ websiteId: 'w_1' }))).toBe(
      'website:w_1',
    );
    expect(resolveResource('{kind}:{id}', params({ kind: 'dashboard', id: 'd_1' }))).toBe(
      'dashboard:d_1',
    );
    expect(resolveResource('website:w_fixed', params({}))).toBe('website:w_fixed');
  });

  it('is null when a param is missing or empty', () => {
    expect(resolveResource('website:{websiteId}', params({}))).toBeNull();
    expect(resolveResource('website:{websiteId}', params({ websiteId: '' }))).toBeNull();
    expect(resolveResource('{kind}:{id}', params({ kind: 'link' }))).toBeNull();
  });
});
