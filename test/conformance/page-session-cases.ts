/**
 * Page sessions (SPEC §6, issue #21 items 2 and 3), as an attacker holding a signed-in browser's
 * cookie would try them: each case signs in with a key, then changes the key through the
 * management API with another admin key, and the cookie's next request must act with the key as
 * it now is.
 */
import { expect } from 'vitest';
import type { CaseRequest, ConformanceCase, KeySetup } from './cases.js';

const failure = (code: string, error: string) => ({ success: false, error, code });
const SESSION_ENDED = failure('AUTH_REQUIRED', 'The session has ended: sign in again');
const NO_STORE = { 'cache-control': 'no-store' };
const W1 = '/v1/websites/w_1/analytics';
const OWNER: KeySetup = { name: 'owner', scopes: ['manage:keys', 'read:data'] };
const ROOT: KeySetup = { name: 'root', scopes: ['manage:keys', 'read:data'] };

const get = (path: string, headers: Record<string, string> = {}): CaseRequest => ({
  path,
  headers,
});
const manage = (
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): CaseRequest => ({
  method,
  path: `/v1/api-keys${path}`,
  headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
  body: body === undefined ? undefined : JSON.stringify(body),
});
const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });
const ok = { success: true, data: expect.anything() };

export const pageSessionCases: ConformanceCase[] = [
  {
    name: 'page session: narrowed scopes or resources of its key refuse its next request',
    keys: { owner: OWNER, root: ROOT },
    pageSessions: { browser: 'owner' },
    steps: [
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 200,
        handlerRan: true,
        headers: { 'x-ratelimit-limit': '10000' },
      },
      {
        request: ({ cookie }) => manage('GET', '/me', { cookie: cookie('browser') }),
        status: 200,
        headers: NO_STORE,
        body: {
          success: true,
          data: expect.objectContaining({
            kind: 'key',
            name: 'owner',
            scopes: ['manage:keys', 'read:data'],
            session: expect.objectContaining({ id: expect.stringMatching(/^ses_[0-9a-f]{16}$/) }),
          }),
        },
      },
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('owner')}`, bearer(key('root')), { resources: ['website:w_2'] }),
        status: 200,
        body: ok,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 403,
        body: failure('ACCESS_DENIED', 'Access to this resource is denied'),
        handlerRan: false,
      },
      {
        // The attack of issue #21: a session that kept the scopes copied at sign-in made a global admin key.
        request: ({ cookie, origin }) =>
          manage(
            'POST',
            '',
            { cookie: cookie('browser'), origin },
            { name: 'global admin', scopes: ['manage:keys', 'read:data'] },
          ),
        status: 403,
        body: failure(
          'FORBIDDEN',
          'resources: cannot grant access to every resource, which only a global caller has',
        ),
      },
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('owner')}`, bearer(key('root')), { scopes: ['read:data'] }),
        status: 200,
        body: ok,
      },
      {
        request: ({ cookie }) => manage('GET', '', { cookie: cookie('browser') }),
        status: 403,
        headers: NO_STORE,
        body: failure('INSUFFICIENT_SCOPE', 'API key lacks the required scope: manage:keys'),
      },
    ],
  },
  {
    name: 'page session: rotating its key (even with a grace period) or revoking it ends the session',
    keys: { owner: OWNER, other: { ...OWNER, name: 'other' }, root: ROOT },
    pageSessions: { browser: 'owner', second: 'other' },
    steps: [
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 200,
        handlerRan: true,
      },
      {
        request: ({ key, id }) =>
          manage('POST', `/${id('owner')}/rotate`, bearer(key('root')), {
            gracePeriodSeconds: 3600,
          }),
        status: 200,
        headers: NO_STORE,
        body: ok,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 401,
        body: SESSION_ENDED,
        headers: { 'www-authenticate': 'Bearer realm="api"' },
        handlerRan: false,
      },
      {
        // The old secret still works for servers during the grace period; the session does not.
        request: ({ key }) => get(W1, bearer(key('owner'))),
        status: 200,
        handlerRan: true,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('second') }),
        status: 200,
        handlerRan: true,
      },
      {
        request: ({ key, id }) => manage('DELETE', `/${id('other')}`, bearer(key('root'))),
        status: 200,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('second') }),
        status: 401,
        body: SESSION_ENDED,
        handlerRan: false,
      },
    ],
  },
  {
    name: 'page session: its key’s IP and endpoint restrictions apply to every request',
    keys: { owner: OWNER, root: ROOT },
    pageSessions: { browser: 'owner' },
    steps: [
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('owner')}`, bearer(key('root')), {
            restrictions: { ips: ['203.0.113.0/24'] },
          }),
        status: 200,
        body: ok,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed from this IP address'),
        handlerRan: false,
      },
      {
        request: ({ key, id }) =>
          manage('PATCH', `/${id('owner')}`, bearer(key('root')), {
            restrictions: { endpoints: ['GET /v1/query/**'] },
          }),
        status: 200,
        body: ok,
      },
      {
        request: ({ cookie }) => get(W1, { cookie: cookie('browser') }),
        status: 403,
        body: failure('FORBIDDEN', 'This API key is not allowed to call this endpoint'),
        handlerRan: false,
      },
      {
        request: ({ cookie }) => get('/v1/query/websites', { cookie: cookie('browser') }),
        status: 200,
        handlerRan: true,
      },
    ],
  },
  {
    name: 'page session: the cookie does not stand for a state-changing request from another site',
    keys: { owner: OWNER },
    pageSessions: { browser: 'owner' },
    steps: [
      {
        request: ({ cookie }) =>
          manage(
            'POST',
            '',
            { cookie: cookie('browser'), 'sec-fetch-site': 'same-site' },
            { name: 'planted', scopes: ['read:data'] },
          ),
        status: 403,
        headers: NO_STORE,
        body: failure('FORBIDDEN', 'Cross-site requests cannot use the session'),
      },
      {
        request: ({ cookie }) => ({
          method: 'POST',
          path: '/v1/events',
          headers: { cookie: cookie('browser'), 'sec-fetch-site': 'cross-site' },
          body: '{}',
        }),
        status: 403,
        body: failure('FORBIDDEN', 'Cross-site requests cannot use the session'),
      },
      {
        request: ({ cookie, origin }) =>
          manage(
            'POST',
            '',
            { cookie: cookie('browser'), origin, 'sec-fetch-site': 'same-origin' },
            { name: 'made in the page', scopes: ['read:data'] },
          ),
        status: 201,
        headers: NO_STORE,
        body: { success: true, data: expect.objectContaining({ name: 'made in the page' }) },
      },
    ],
  },
  {
    name: 'page session: a forged, malformed or planted cookie is refused',
    keys: { owner: OWNER },
    steps: [
      {
        request: () => get(W1, { cookie: `keygate_session=${'0'.repeat(64)}` }),
        status: 401,
        body: SESSION_ENDED,
        handlerRan: false,
      },
      {
        request: () => get(W1, { cookie: '__Host-keygate_session=not-a-token; keygate_session=x' }),
        status: 401,
        body: SESSION_ENDED,
        handlerRan: false,
      },
      {
        request: () => manage('GET', '', { cookie: `keygate_session=${'f'.repeat(64)}` }),
        status: 401,
        headers: NO_STORE,
        body: SESSION_ENDED,
      },
    ],
  },
];
