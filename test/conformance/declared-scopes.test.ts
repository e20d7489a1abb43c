import '../../examples/shared/src/scopes.js';
import type { Scope } from '@keygate/core';
import { requireScope as expressRequireScope } from '@keygate/express';
import { requireScope as honoRequireScope } from '@keygate/hono';
import { requireScope as koaRequireScope } from '@keygate/koa';
import { describe, expectTypeOf, it } from 'vitest';

// These checks run in `tsc` (the repo typechecks its tests): a misspelt scope must not compile.
describe('scopes declared through `Register`', () => {
  it('are the only ones requireScope() accepts, on every adapter', () => {
    expectTypeOf<'read:data'>().toExtend<Scope>();
    expectTypeOf<'raed:data'>().not.toExtend<Scope>();

    expectTypeOf(honoRequireScope).toBeCallableWith('read:data');
    expectTypeOf(expressRequireScope).toBeCallableWith({ any: ['read:data', 'write:llm'] });
    expectTypeOf(koaRequireScope).toBeCallableWith(['track:events', 'read:config']);

    // @ts-expect-error 'raed:data' is not a declared scope
    honoRequireScope('raed:data');
    // @ts-expect-error 'raed:data' is not a declared scope
    expressRequireScope('raed:data', { resource: 'website:{websiteId}' });
    // @ts-expect-error 'raed:data' is not a declared scope
    koaRequireScope({ all: ['read:data', 'raed:data'] });
  });
});
