import { useMemo, useState } from 'preact/hooks';
import { formatDate, formatRelative, STATUS_LABELS, type Status, statusOf } from './format.ts';
import { followLink, hrefOf, type Route } from './router.ts';
import type { ApiKey } from './types.ts';
import { Chips, KeyBadges, StatusBadge } from './ui.tsx';

const PAGE_SIZE = 20;

interface Filters {
  search: string;
  status: Status | 'all';
  type: 'all' | 'secret' | 'public';
  environment: 'all' | 'live' | 'test';
}

function matches(key: ApiKey, filters: Filters, now: number): boolean {
  if (filters.status !== 'all' && statusOf(key, now) !== filters.status) return false;
  if (filters.type !== 'all' && key.type !== filters.type) return false;
  if (filters.environment !== 'all' && key.environment !== filters.environment) return false;
  const needle = filters.search.trim().toLowerCase();
  if (!needle) return true;
  return [key.name, key.id, key.start, ...key.scopes, ...(key.resources ?? [])].some((value) =>
    value.toLowerCase().includes(needle),
  );
}

export function KeyList({
  keys,
  base,
  navigate,
  onCreate,
}: {
  keys: ApiKey[];
  base: string;
  navigate: (route: Route) => void;
  onCreate: () => void;
}) {
  const [filters, setFilters] = useState<Filters>({
    search: '',
    status: 'all',
    type: 'all',
    environment: 'all',
  });
  const [page, setPage] = useState(0);
  const [now] = useState(Date.now);
  const shown = useMemo(
    () => keys.filter((key) => matches(key, filters, now)),
    [keys, filters, now],
  );
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  const current = Math.min(page, pages - 1);
  const rows = shown.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);
  const filter = (patch: Partial<Filters>) => {
    setFilters({ ...filters, ...patch });
    setPage(0);
  };

  if (keys.length === 0) {
    return (
      <div class="empty card">
        <h2>No API keys yet</h2>
        <p>Create a key to let a server, a script or a browser app call your API.</p>
        <button type="button" class="button button-primary" onClick={onCreate}>
          Create your first key
        </button>
      </div>
    );
  }

  return (
    <section class="card" aria-labelledby="keys-heading">
      <div class="toolbar">
        <h2 id="keys-heading" class="sr-only">
          Keys
        </h2>
        <div class="search">
          <label for="key-search" class="sr-only">
            Search keys
          </label>
          <svg viewBox="0 0 20 20" width="16" height="16" aria-hidden="true">
            <circle cx="9" cy="9" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6" />
            <path d="M13 13l4 4" stroke="currentColor" stroke-width="1.6" />
          </svg>
          <input
            id="key-search"
            type="search"
            placeholder="Search by name, key, scope or resource"
            value={filters.search}
            onInput={(e) => filter({ search: e.currentTarget.value })}
          />
        </div>
        <label class="select">
          <span class="sr-only">Status</span>
          <select
            value={filters.status}
            onChange={(e) => filter({ status: e.currentTarget.value as Filters['status'] })}
          >
            <option value="all">All statuses</option>
            {(Object.keys(STATUS_LABELS) as Status[]).map((status) => (
              <option key={status} value={status}>
                {STATUS_LABELS[status]}
              </option>
            ))}
          </select>
        </label>
        <label class="select">
          <span class="sr-only">Type</span>
          <select
            value={filters.type}
            onChange={(e) => filter({ type: e.currentTarget.value as Filters['type'] })}
          >
            <option value="all">All types</option>
            <option value="secret">Secret</option>
            <option value="public">Public</option>
          </select>
        </label>
        <label class="select">
          <span class="sr-only">Environment</span>
          <select
            value={filters.environment}
            onChange={(e) =>
              filter({ environment: e.currentTarget.value as Filters['environment'] })
            }
          >
            <option value="all">All environments</option>
            <option value="live">Live</option>
            <option value="test">Test</option>
          </select>
        </label>
      </div>

      <div class="table-wrap">
        <table class="keys">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Key</th>
              <th scope="col">Scopes</th>
              <th scope="col">Resources</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((key) => {
              const route: Route = { name: 'key', id: key.id };
              const status = statusOf(key, now);
              return (
                <tr
                  key={key.id}
                  class={status === 'revoked' ? 'row-revoked' : undefined}
                  data-key-id={key.id}
                >
                  <td data-label="Name">
                    <a
                      class="key-name"
                      href={hrefOf(base, route)}
                      onClick={(e) => followLink(e, () => navigate(route))}
                    >
                      {key.name}
                    </a>
                    <KeyBadges type={key.type} environment={key.environment} />
                  </td>
                  <td data-label="Key">
                    <code class="key-start">{key.start}…</code>
                  </td>
                  <td data-label="Scopes">
                    <Chips items={key.scopes} empty="None" />
                  </td>
                  <td data-label="Resources">
                    {key.resources === null ? (
                      <span class="muted">All</span>
                    ) : (
                      <Chips items={key.resources} empty="None" max={2} />
                    )}
                  </td>
                  <td data-label="Created">
                    <time dateTime={key.createdAt}>{formatDate(key.createdAt)}</time>
                  </td>
                  <td data-label="Last used">
                    <time dateTime={key.lastUsedAt ?? undefined}>
                      {formatRelative(key.lastUsedAt)}
                    </time>
                  </td>
                  <td data-label="Expires">
                    <time dateTime={key.expiresAt ?? undefined}>
                      {formatDate(key.expiresAt, 'Never')}
                    </time>
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={status} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows.length === 0 && <p class="no-match">No key matches these filters.</p>}
      </div>

      <nav class="pager" aria-label="Pages of keys">
        <span role="status">
          {shown.length === 0
            ? 'No keys'
            : `${current * PAGE_SIZE + 1}–${current * PAGE_SIZE + rows.length} of ${shown.length} ${shown.length === 1 ? 'key' : 'keys'}`}
        </span>
        <span class="pager-buttons">
          <button
            type="button"
            class="button button-small"
            disabled={current === 0}
            onClick={() => setPage(current - 1)}
          >
            Previous
          </button>
          <button
            type="button"
            class="button button-small"
            disabled={current >= pages - 1}
            onClick={() => setPage(current + 1)}
          >
            Next
          </button>
        </span>
      </nav>
    </section>
  );
}
