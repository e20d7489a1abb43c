import { useEffect, useState } from 'preact/hooks';
import type { Api } from './api.ts';
import type { Config } from './config.ts';
import { EditKeyDialog, RevokeDialog, RotateDialog } from './dialogs.tsx';
import { formatDateTime, formatRelative, statusOf } from './format.ts';
import { followLink, hrefOf, type Route } from './router.ts';
import type { Actor, ApiKey, AuditEvent, Me } from './types.ts';
import { Alert, Badge, Chips, KeyBadges, Spinner, StatusBadge } from './ui.tsx';
import { UsagePanel } from './usage-chart.tsx';

const ACTIONS: Record<string, string> = {
  'auth.succeeded': 'Authenticated',
  'auth.failed': 'Authentication failed',
  'scope.checked': 'Scope check',
  'resource.checked': 'Resource check',
  'key.created': 'Key created',
  'key.updated': 'Key updated',
  'key.rotated': 'Key rotated',
  'key.revoked': 'Key revoked',
  'session.started': 'Signed in to the page',
  'session.ended': 'Signed out of the page',
};

/** Who made a change: the acting key's name and start as the event recorded them, else its id. */
function ActedBy({ event }: { event: AuditEvent }) {
  const by = event.detail?.by as Actor | undefined;
  if (by?.name) {
    const via = by.via === 'page_session' ? 'signed in to this page' : 'with its key';
    return (
      <span class="acted-by" title={`${by.name}, ${via}`}>
        by {by.name}
        {by.start && <code>{by.start}…</code>}
      </span>
    );
  }
  if (!event.actor || event.actor === event.keyId) return null;
  return <span class="acted-by">by {event.actor}</span>;
}

const EVENTS_PAGE = 25;

/** A path that may break after its slashes, and only there. */
function PathText({ path }: { path: string }) {
  return (
    <>
      {path.split('/').map((segment, index) => (
        <span key={index}>
          {index > 0 && '/'}
          {index > 0 && <wbr />}
          {segment}
        </span>
      ))}
    </>
  );
}
const MAX_EVENTS = 1_000;

function Events({ api, keyId, refreshed }: { api: Api; keyId: string; refreshed: number }) {
  const [limit, setLimit] = useState(EVENTS_PAGE);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    api.events(keyId, limit).then(
      (loaded) => {
        if (!current) return;
        setEvents(loaded);
        setError(null);
      },
      (failure: unknown) =>
        current && setError(failure instanceof Error ? failure.message : String(failure)),
    );
    return () => {
      current = false;
    };
  }, [api, keyId, limit, refreshed]);

  return (
    <section class="card" aria-labelledby="events-heading">
      <div class="card-header">
        <h2 id="events-heading">Audit events</h2>
        <span class="muted">Newest first</span>
      </div>
      {error && <Alert>{error}</Alert>}
      {!events && !error && <Spinner label="Loading events…" />}
      {events && events.length === 0 && <p class="muted">No events recorded for this key yet.</p>}
      {events && events.length > 0 && (
        <div class="table-wrap">
          <table class="events" data-testid="events">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">Outcome</th>
                <th scope="col">Request</th>
                <th scope="col">Client</th>
              </tr>
            </thead>
            <tbody>
              {events.map((event) => (
                <tr key={event.id} data-action={event.action}>
                  <td data-label="When">
                    <time dateTime={event.at} title={formatDateTime(event.at)}>
                      {formatRelative(event.at)}
                    </time>
                  </td>
                  <td data-label="Event">
                    {ACTIONS[event.action] ?? event.action}
                    <ActedBy event={event} />
                  </td>
                  <td data-label="Outcome">
                    <Badge tone={event.outcome === 'success' ? 'ok' : 'bad'}>
                      {event.outcome === 'success' ? 'success' : (event.reason ?? 'failure')}
                    </Badge>
                  </td>
                  <td data-label="Request">
                    {event.method && event.path ? (
                      <code class="request">
                        {event.method} <PathText path={event.path} />
                      </code>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                  <td data-label="Client">
                    <span class="mono small">{event.ip ?? '—'}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {events && events.length >= limit && limit < MAX_EVENTS && (
        <div class="more">
          <button
            type="button"
            class="button"
            onClick={() => setLimit(Math.min(limit + EVENTS_PAGE * 2, MAX_EVENTS))}
          >
            Show older events
          </button>
        </div>
      )}
    </section>
  );
}

function Details({ apiKey }: { apiKey: ApiKey }) {
  const { restrictions, rateLimit } = apiKey;
  const limits = rateLimit
    ? [
        rateLimit.perSecond !== undefined && `${rateLimit.perSecond}/s`,
        rateLimit.burst !== undefined && `burst ${rateLimit.burst}`,
        rateLimit.daily !== undefined && `${rateLimit.daily}/day`,
      ].filter(Boolean)
    : [];
  return (
    <section class="card" aria-labelledby="details-heading">
      <h2 id="details-heading">Details</h2>
      <dl class="details">
        <div>
          <dt>Key ID</dt>
          <dd class="mono">{apiKey.id}</dd>
        </div>
        <div>
          <dt>Organisation</dt>
          <dd class="mono">{apiKey.ownerId}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{formatDateTime(apiKey.createdAt)}</dd>
        </div>
        <div>
          <dt>Last used</dt>
          <dd>{formatRelative(apiKey.lastUsedAt)}</dd>
        </div>
        <div>
          <dt>Expires</dt>
          <dd>{formatDateTime(apiKey.expiresAt, 'Never')}</dd>
        </div>
        {apiKey.revokedAt && (
          <div>
            <dt>Revoked</dt>
            <dd>{formatDateTime(apiKey.revokedAt)}</dd>
          </div>
        )}
        {apiKey.previousDigestExpiresAt &&
          Date.parse(apiKey.previousDigestExpiresAt) > Date.now() && (
            <div>
              <dt>Previous secret works until</dt>
              <dd>{formatDateTime(apiKey.previousDigestExpiresAt)}</dd>
            </div>
          )}
        <div class="wide">
          <dt>Scopes</dt>
          <dd>
            <Chips items={apiKey.scopes} empty="None" max={50} />
          </dd>
        </div>
        <div class="wide">
          <dt>Resources</dt>
          <dd>
            {apiKey.resources === null ? (
              'All resources'
            ) : (
              <Chips items={apiKey.resources} empty="None" max={50} />
            )}
          </dd>
        </div>
        <div class="wide">
          <dt>Restrictions</dt>
          <dd>
            {restrictions?.ips?.length ||
            restrictions?.referrers?.length ||
            restrictions?.endpoints?.length ? (
              <ul class="plain">
                {restrictions.ips?.length ? <li>IPs: {restrictions.ips.join(', ')}</li> : null}
                {restrictions.referrers?.length ? (
                  <li>Referrers: {restrictions.referrers.join(', ')}</li>
                ) : null}
                {restrictions.endpoints?.length ? (
                  <li>Endpoints: {restrictions.endpoints.join(', ')}</li>
                ) : null}
              </ul>
            ) : (
              'None'
            )}
          </dd>
        </div>
        <div class="wide">
          <dt>Rate limit</dt>
          <dd>{limits.length > 0 ? limits.join(' · ') : 'Default for its type'}</dd>
        </div>
      </dl>
    </section>
  );
}

type Open = 'edit' | 'rotate' | 'revoke' | null;

export function KeyPage({
  api,
  config,
  me,
  keyId,
  navigate,
}: {
  api: Api;
  config: Config;
  me: Me;
  keyId: string;
  navigate: (route: Route) => void;
}) {
  const [apiKey, setApiKey] = useState<ApiKey | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<Open>(null);
  const [refreshed, setRefreshed] = useState(0);
  useEffect(() => {
    let current = true;
    api.get(keyId).then(
      (loaded) => current && setApiKey(loaded),
      (failure: unknown) =>
        current && setError(failure instanceof Error ? failure.message : String(failure)),
    );
    return () => {
      current = false;
    };
  }, [api, keyId, refreshed]);
  const back: Route = { name: 'list' };
  const changed = (key?: ApiKey) => {
    if (key) setApiKey(key);
    setRefreshed((n) => n + 1);
  };

  return (
    <div class="page">
      <a
        class="back"
        href={hrefOf(config.mountPath, back)}
        onClick={(e) => followLink(e, () => navigate(back))}
      >
        ← All keys
      </a>
      {error && <Alert>{error}</Alert>}
      {!apiKey && !error && <Spinner label="Loading key…" />}
      {apiKey && (
        <>
          <div class="page-header">
            <div>
              <h1>
                {apiKey.name} <StatusBadge status={statusOf(apiKey)} />
              </h1>
              <p class="subtitle">
                <code class="key-start">{apiKey.start}…</code>
                <KeyBadges type={apiKey.type} environment={apiKey.environment} />
              </p>
            </div>
            {!apiKey.revokedAt && (
              <div class="actions">
                <button type="button" class="button" onClick={() => setOpen('edit')}>
                  Edit
                </button>
                <button type="button" class="button" onClick={() => setOpen('rotate')}>
                  Rotate
                </button>
                <button
                  type="button"
                  class="button button-danger-outline"
                  onClick={() => setOpen('revoke')}
                >
                  Revoke
                </button>
              </div>
            )}
          </div>
          <div class="grid">
            <div class="grid-main">
              <UsagePanel api={api} keyId={apiKey.id} refreshed={refreshed} />
              <Events api={api} keyId={apiKey.id} refreshed={refreshed} />
            </div>
            <Details apiKey={apiKey} />
          </div>
          {open === 'edit' && (
            <EditKeyDialog
              api={api}
              config={config}
              me={me}
              apiKey={apiKey}
              onClose={() => setOpen(null)}
              onSaved={(key) => {
                setOpen(null);
                changed(key);
              }}
            />
          )}
          {open === 'rotate' && (
            <RotateDialog
              api={api}
              apiKey={apiKey}
              onClose={() => setOpen(null)}
              onRotated={(key) => changed(key)}
            />
          )}
          {open === 'revoke' && (
            <RevokeDialog
              api={api}
              apiKey={apiKey}
              onClose={() => setOpen(null)}
              onRevoked={() => {
                setOpen(null);
                changed();
              }}
            />
          )}
        </>
      )}
    </div>
  );
}
